import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sleep } from '../support/private-services';
import { createCaller, ServiceGroup, settleAll } from '../support/harness';
import { serviceEnv } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/**
 * kill -9 of the worker at random moments while it applies tens of thousands of operations, several times in
 * a row: afterwards every operation is settled, every completed one is in the target exactly once, and every
 * settled one was notified at least once.
 */
describe('fault: kill -9 of a worker mid-load (built service, real broker and database)', () => {
  if (withoutBroker()) return;
  let group: ServiceGroup;

  after(() => group?.close());

  it('loses nothing and applies nothing twice', async (t) => {
    const env = serviceEnv({ BATCH_PROCESS_OPERATION_LIMIT: '200' });
    group = new ServiceGroup(env);
    const db = group.db;
    const api = await group.start('api');
    await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref bigint NOT NULL)`);
    await db.query(`CREATE TABLE public.counters (name text PRIMARY KEY, n bigint NOT NULL DEFAULT 0)`);
    await db.query(`INSERT INTO public.counters SELECT 'c' || g, 0 FROM generate_series(0, 9) g`);
    const caller = await createCaller(api, 'loader', ['events', 'counters']);

    const INSERTS = 24_000;
    const INCREMENTS = 6_000;
    const requests = [
      ...Array.from({ length: INSERTS / 1000 }, (_, m) =>
        Array.from({ length: 1000 }, (_, i) => ({
          target: 'events',
          type: 'insert' as const,
          values: { ref: m * 1000 + i },
        })),
      ),
      ...Array.from({ length: INCREMENTS / 1000 }, () =>
        Array.from({ length: 1000 }, (_, i) => ({
          target: 'counters',
          type: 'increment' as const,
          key: { name: `c${i % 10}` },
          values: { n: 1 },
        })),
      ),
    ];
    await Promise.all(requests.map((operations) => caller.rpc.createOperations(operations)));

    const kills: number[] = [];
    for (let round = 0; round < 4; round++) {
      const worker = await group.start('worker');
      const delay = 100 + Math.floor(Math.random() * 500);
      kills.push(delay);
      await sleep(delay);
      worker.process.kill('SIGKILL');
      await worker.stop();
    }
    const pendingAfterKills = await db.count(
      `SELECT count(*) AS n FROM batch.operation_states WHERE status = 'PENDING'`,
    );
    t.diagnostic(
      `killed after ${kills.join(', ')} ms of work; ${pendingAfterKills} of ${INSERTS + INCREMENTS} operations still pending`,
    );
    await group.start('worker');

    const settled = await settleAll(db, caller, 90_000);
    assert.equal(
      settled.length,
      INSERTS + INCREMENTS,
      `kills after ${kills.join(', ')} ms; ${pendingAfterKills} pending after the kills`,
    );
    assert.ok(settled.every((o) => o.status === 'COMPLETED'));
    assert.deepEqual(
      await db.query(`SELECT ref FROM public.events GROUP BY ref HAVING count(*) > 1`),
      [],
      'no insert applied twice',
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.events`), INSERTS);
    assert.equal(
      await db.count(`SELECT sum(n) AS n FROM public.counters`),
      INCREMENTS,
      'no increment applied twice or lost',
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM batch.outbox WHERE sent_at IS NULL`), 0);
    await caller.close();
  });
});
