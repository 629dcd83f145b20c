import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createCaller, ServiceGroup, settleAll } from '../support/harness';
import { serviceEnv } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/**
 * Two API processes and two worker processes side by side: they share the load, no operation is applied twice,
 * and per target the order of application is kept (a counter that alternates +1/−1 under a CHECK (n BETWEEN 0
 * AND 1) would fail an operation if any two were swapped).
 */
describe('scale-out: two API and two worker processes (built service, real broker and database)', () => {
  if (withoutBroker()) return;
  let group: ServiceGroup;

  after(() => group?.close());

  it('shares the load, applies everything once, and keeps per-target order', async () => {
    group = new ServiceGroup(serviceEnv({ BATCH_PROCESS_OPERATION_LIMIT: '250' }));
    const db = group.db;
    await Promise.all((['api', 'api', 'worker', 'worker'] as const).map((role) => group.start(role)));
    const TARGETS = 6;
    for (let t = 0; t < TARGETS; t++) {
      await db.query(`CREATE TABLE public.toggle${t} (id int PRIMARY KEY, n int NOT NULL CHECK (n BETWEEN 0 AND 1))`);
      await db.query(`INSERT INTO public.toggle${t} VALUES (1, 0)`);
    }
    await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref text NOT NULL)`);
    const caller = await createCaller(group.processes[0], 'busy', ['*']);

    // Per target, one create after another (each after the previous one returned): +1, −1, +1, …
    const STEPS = 120;
    const toggles = Array.from({ length: TARGETS }, async (_, t) => {
      for (let i = 0; i < STEPS; i++) {
        await caller.rpc.createOperation({
          target: `toggle${t}`,
          type: 'increment',
          key: { id: 1 },
          values: { n: i % 2 === 0 ? 1 : -1 },
        });
      }
    });
    const bulk = Array.from({ length: 10 }, (_, m) =>
      caller.rpc.createOperations(
        Array.from({ length: 1000 }, (_, i) => ({
          target: 'events',
          type: 'insert' as const,
          values: { ref: `${m}-${i}` },
        })),
      ),
    );
    await Promise.all([...toggles, ...bulk]);

    const settled = await settleAll(db, caller, 90_000);
    assert.equal(settled.length, TARGETS * STEPS + 10_000);
    const failed = await db.query(`SELECT target, error_code FROM batch.operation_states WHERE status <> 'COMPLETED'`);
    assert.deepEqual(failed, [], 'no increment ran out of order');
    for (let t = 0; t < TARGETS; t++) assert.deepEqual(await db.query(`SELECT n FROM public.toggle${t}`), [{ n: 0 }]);
    assert.deepEqual(
      await db.query(`SELECT ref FROM public.events GROUP BY ref HAVING count(*) > 1`),
      [],
      'nothing applied twice',
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.events`), 10_000);
    const workers = await db.query<{ worker: string }>(
      `SELECT DISTINCT worker FROM batch.chunks WHERE status = 'COMPLETED'`,
    );
    assert.equal(workers.length, 2, 'both workers applied chunks');
    await caller.close();
  });
});
