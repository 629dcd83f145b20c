import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ChunkStep } from '../../src/services/chunk-step.service';
import { OperationService } from '../../src/services/operation.service';
import { createTestApp, TestApp } from '../support/app-context';

describe('queue health: a chunk reads the queue\'s tables through their indexes (real PostgreSQL)', () => {
  let t: TestApp;

  before(async () => {
    t = await createTestApp({ BATCH_PROCESS_OPERATION_LIMIT: '1000' });
    await t.db.query(`CREATE TABLE public.events (id int PRIMARY KEY)`);
  });
  after(() => t.close());

  /** Sequential scans of the queue's tables, once PostgreSQL has published at least `settled` outcomes inserted. */
  async function seqScans(settled: number): Promise<Record<string, number>> {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(100)) {
      const rows = await t.db.query<{ relname: string; seq_scan: string; n_tup_ins: string }>(
        `SELECT relname, seq_scan, n_tup_ins FROM pg_stat_user_tables WHERE schemaname = 'batch' AND relname IN ('operations', 'pending', 'outcomes')`);
      if (Number(rows.find((r) => r.relname === 'outcomes')?.n_tup_ins) >= settled) return Object.fromEntries(rows.map((r) => [r.relname, Number(r.seq_scan)]));
    }
    throw new Error('statistics were not published');
  }

  it('claims and settles a chunk without scanning the settled rows', async () => {
    const client = await t.client('health');
    await t.db.query(
      `WITH settled AS (
         INSERT INTO batch.operations (client_id, target, type, row_values)
         SELECT $1, 'public.events', 'insert', jsonb_build_object('id', -g) FROM generate_series(1, 100000) g RETURNING id, client_id, target)
       INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, rows_affected, settled_at)
       SELECT id, client_id, target, 'COMPLETED', 1, 1, now() FROM settled`,
      [client.id],
    );
    await t.get(OperationService).createMany(client, Array.from({ length: 1000 }, (_, i) => ({ target: 'events', type: 'insert' as const, values: { id: i } })));
    await t.db.query(`ANALYZE batch.operations, batch.pending, batch.outcomes`);
    const before = await seqScans(100_000);

    assert.equal((await t.get(ChunkStep).execute()).read, 1000);

    assert.deepEqual(await seqScans(101_000), before, 'sequential scans of the queue\'s tables during the chunk');
  });
});
