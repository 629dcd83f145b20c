import { ClientProxyFactory, RmqRecordBuilder, Transport } from '@nestjs/microservices';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { lastValueFrom } from 'rxjs';
import { createCaller, settleAll, steadyLoad, TestDb } from '../support/harness';
import { POSTGRES_MISSING, PrivatePostgres, sleep, startPostgres } from '../support/private-services';
import { withoutBroker } from '../support/shared-services';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';

/**
 * PostgreSQL restarted mid-load (a private server of the test's own): meanwhile ingest answers UNAVAILABLE at once
 * (no hang) and an event waits in the queue, and afterwards the poller and the outbox relay recover by themselves;
 * nothing acknowledged is lost or applied twice.
 */
describe(
  'fault: PostgreSQL restarted mid-load (built service, private PostgreSQL)',
  { skip: POSTGRES_MISSING ?? false },
  () => {
    if (withoutBroker()) return;
    let postgres: PrivatePostgres;
    let service: ServiceProcess;
    let db: TestDb;

    before(async () => {
      postgres = await startPostgres();
    });

    after(async () => {
      await db?.close();
      await service?.destroy();
      await postgres?.destroy();
    });

    it('answers UNAVAILABLE while the database is down, keeps events for later, and recovers by itself', async (t) => {
      service = await startService(serviceEnv(postgres.env));
      db = new TestDb(service.env.DB_NAME, service.env);
      await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref text NOT NULL)`);
      const caller = await createCaller(service, 'steady', ['events'], 10_000);
      const proxy = ClientProxyFactory.create({
        transport: Transport.RMQ,
        options: {
          urls: [service.env.BATCH_SERVICE_RMQ_URL],
          queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
          queueOptions: { durable: true },
        },
      });
      const emit = (ref: string) =>
        lastValueFrom(
          proxy.emit(
            'createOperation',
            new RmqRecordBuilder({ target: 'events', type: 'insert', values: { ref }, idempotencyKey: ref })
              .setOptions({ headers: { 'x-api-key': caller.apiKey } })
              .build(),
          ),
          { defaultValue: undefined },
        );

      const load = steadyLoad(caller, 8);
      const { acknowledged, errors } = load;
      let before: number;
      let during: number;
      try {
        await sleep(1000);
        before = acknowledged.length;
        await postgres.stop();
        for (let i = 0; i < 3; i++) await emit(`while-down-${i}`);
        await sleep(2500); // the events go back to the queue at least once
        await postgres.start();
        during = acknowledged.length - before;
        await sleep(3000);
      } finally {
        await load.stop();
        await proxy.close();
      }
      const slowest = load.slowest();
      t.diagnostic(
        `${before} acknowledged before, ${during} during, ${acknowledged.length - before - during} after the restart; errors ${JSON.stringify([...errors])}; slowest call ${slowest} ms`,
      );
      assert.ok((errors.get('UNAVAILABLE') ?? 0) > 0, 'ingest answered UNAVAILABLE while the database was down');
      assert.equal(errors.get('TIMEOUT'), undefined, 'no call hung until its timeout');
      assert.ok(acknowledged.length > before + during + 50, 'ingest works again after the restart');
      const health = await http(service, 'GET', '/api/operations?limit=1', caller.apiKey);
      assert.equal(health.status, 200);

      const settled = await settleAll(db, caller, 60_000);
      const completed = new Set(settled.filter((o) => o.status === 'COMPLETED').map((o) => o.id));
      assert.ok(
        acknowledged.every((id) => completed.has(id)),
        'every acknowledged operation was applied',
      );
      assert.equal(await db.count(`SELECT count(*) AS n FROM public.events`), completed.size, 'each applied once');
      await eventually(
        async () =>
          (await db.count(`SELECT count(*) AS n FROM public.events WHERE ref LIKE 'while-down-%'`)) === 3
            ? true
            : undefined,
        30_000,
        'the events sent while the database was down',
      );
      await caller.close();
    });
  },
);
