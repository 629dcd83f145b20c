import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PrivateRabbitMq, RABBITMQ_MISSING, sleep, startRabbitMq } from '../support/private-services';
import { createCaller, settleAll, steadyLoad, TestDb } from '../support/harness';
import { eventually, serviceEnv, ServiceProcess, startService } from '../support/service-process';

/**
 * RabbitMQ (a private node of the test's own) restarted mid-load: the service reconnects by itself, callers that got an answer lose nothing,
 * and the notifications written meanwhile are published once the broker is back.
 */
describe(
  'fault: RabbitMQ restarted mid-load (built service, private RabbitMQ)',
  { skip: RABBITMQ_MISSING ?? false },
  () => {
    let broker: PrivateRabbitMq;
    let service: ServiceProcess;
    let db: TestDb;

    before(async () => {
      broker = await startRabbitMq();
    });

    after(async () => {
      await db?.close();
      await service?.destroy();
      await broker?.destroy();
    });

    it('reconnects, loses no acknowledged operation, and drains the outbox', async (t) => {
      service = await startService(serviceEnv({ BATCH_SERVICE_RMQ_URL: broker.url }));
      db = new TestDb(service.env.DB_NAME);
      await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref text NOT NULL)`);
      const caller = await createCaller(service, 'steady', ['events'], 5_000);

      const load = steadyLoad(caller, 10);
      const { acknowledged, errors } = load;
      let before: number;
      let afterRestart: number;
      try {
        await sleep(1000);
        before = acknowledged.length;
        await broker.restart(2000);
        afterRestart = acknowledged.length;
        await sleep(6000);
      } finally {
        await load.stop();
      }
      t.diagnostic(
        `${before} acknowledged before the restart, ${afterRestart - before} during, ${acknowledged.length - afterRestart} after; errors: ${JSON.stringify([...errors])}`,
      );
      assert.ok(acknowledged.length > afterRestart + 50, 'the service answers again after the broker came back');

      const settled = await settleAll(db, caller, 60_000);
      const completed = new Set(settled.filter((o) => o.status === 'COMPLETED').map((o) => o.id));
      assert.ok(
        acknowledged.every((id) => completed.has(id)),
        'every acknowledged operation was applied',
      );
      assert.equal(await db.count(`SELECT count(*) AS n FROM public.events`), completed.size, 'each applied once');
      // published after commit by the relay, which may still be backing off from the publishes the outage failed
      const settledAt = Date.now();
      await eventually(
        async () =>
          (await db.count(`SELECT count(*) AS n FROM batch.outbox WHERE sent_at IS NULL`)) === 0 ? true : undefined,
        30_000,
        'the outbox to drain',
      );
      t.diagnostic(`the outbox drained ${Date.now() - settledAt} ms after the last operation settled`);
      await caller.close();
    });
  },
);
