import fc from 'fast-check';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import { RetentionService } from '../../src/services/storage/retention.service';
import { StatsService } from '../../src/services/queue-views/stats.service';
import { createTestApp, TestApp } from '../support/app-context';

/** Counts by client, target and status: `recount` of the operations table, `kept` the counts the database keeps. */
const RECOUNT = `SELECT client_id, target, status, count(*)::int AS n FROM batch.operation_states GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
const KEPT = `SELECT client_id, target, status, sum(added - removed)::int AS n FROM batch.operation_counts
               GROUP BY 1, 2, 3 HAVING sum(added - removed) <> 0 ORDER BY 1, 2, 3`;

describe('operation counts (real PostgreSQL)', () => {
  let t: TestApp;
  let clients: AuthenticatedClient[];

  before(async () => {
    t = await createTestApp({ BATCH_RETENTION_HOURS: '1' });
    await t.db.query(`CREATE TABLE public.a (id int PRIMARY KEY)`);
    await t.db.query(`CREATE TABLE public.b (id int PRIMARY KEY)`);
    clients = [await t.client('one'), await t.client('two')];
  });
  after(() => t.close());

  it('equal a count of the operations table after any sequence of creates, chunks, cancels, retries, retention and folds', async () => {
    const operations = t.get(OperationService);
    const oldest = (status: string) =>
      t.db.query<{ id: string; client_id: string }>(
        `SELECT id, client_id FROM batch.operation_states WHERE status = $1 ORDER BY id LIMIT 1`,
        [status],
      );
    const owner = (clientId: string) => clients.find((c) => c.id === clientId)!;
    const action = fc.oneof(
      fc
        .record({
          client: fc.constantFrom(0, 1),
          target: fc.constantFrom('a', 'b'),
          ids: fc.array(fc.integer({ min: 0, max: 30 }), { minLength: 1, maxLength: 8 }),
        })
        .map((create) => async () => {
          // Ids repeat across runs and within a request: their inserts fail when applied, so outcomes are mixed.
          await operations.createMany(
            clients[create.client],
            create.ids.map((id) => ({ target: create.target, type: 'insert' as const, values: { id } })),
          );
        }),
      fc.constant(async () => void (await t.get(ChunkStep).execute())),
      fc.constant(async () => {
        for (const { id, client_id } of await oldest('PENDING')) await operations.cancel(owner(client_id), id);
      }),
      fc.constant(async () => {
        for (const { id, client_id } of await oldest('FAILED')) await operations.retry(owner(client_id), id);
      }),
      fc.constant(async () => {
        await t.db.query(`WITH aged AS (UPDATE batch.outcomes SET settled_at = now() - interval '2 hours'
                                           WHERE operation_id IN (SELECT operation_id FROM batch.outcomes ORDER BY operation_id LIMIT 3) RETURNING operation_id)
                          UPDATE batch.operations SET created_at = now() - interval '3 hours' WHERE id IN (SELECT operation_id FROM aged)`);
        await t.get(RetentionService).purge();
      }),
      fc.constant(() => t.get(RetentionService).foldCounts()),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 12 }), async (actions) => {
        for (const run of actions) {
          await run();
          assert.deepEqual(await t.db.query(KEPT), await t.db.query(RECOUNT));
        }
      }),
      { numRuns: 30, seed: 20261121 },
    );
    const [{ n }] = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM batch.operations`);
    assert.ok(n > 50, `the runs stored ${n} operations`);
    const { byStatus } = await t.get(StatsService).queue(null);
    assert.equal(
      Object.values(byStatus).reduce((sum, count) => sum + count, 0),
      n,
    );
  });

  it('keep settled operations per minute for 15 minutes through folds; older minutes fold into one row', async () => {
    const client = await t.client('throughput');
    const operations = t.get(OperationService);
    await operations.createMany(
      client,
      [100, 101, 101].map((id) => ({ target: 'a', type: 'insert' as const, values: { id } })),
    );
    await t.get(ChunkStep).execute();
    // As if these had been settled 20 minutes ago: the same counts, an older minute.
    await t.db.query(`UPDATE batch.operation_counts SET minute = minute - interval '20 minutes' WHERE client_id = $1`, [
      client.id,
    ]);
    await operations.createMany(
      client,
      [102, 102].map((id) => ({ target: 'a', type: 'insert' as const, values: { id } })),
    );
    await t.get(ChunkStep).execute();
    const before = await t.get(StatsService).queue(client);

    await t.get(RetentionService).foldCounts();

    const after = await t.get(StatsService).queue(client);
    assert.deepEqual(after, before);
    assert.deepEqual(before.byStatus, { PENDING: 0, COMPLETED: 3, FAILED: 2, CANCELLED: 0 });
    assert.deepEqual(
      after.throughput.map(({ completed, failed }) => ({ completed, failed })),
      [{ completed: 1, failed: 1 }],
    );
    const rows = await t.db.query<{ minute: Date; added: string; removed: string }>(
      `SELECT minute, added, removed FROM batch.operation_counts WHERE client_id = $1 AND status = 'COMPLETED' ORDER BY minute`,
      [client.id],
    );
    assert.deepEqual(
      rows.map((r) => [r.minute.valueOf() === -Infinity ? '-infinity' : 'recent', Number(r.added), Number(r.removed)]),
      [
        ['-infinity', 2, 0],
        ['recent', 1, 0],
      ],
    );
  });
});
