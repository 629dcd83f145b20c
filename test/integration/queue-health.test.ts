import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ChunkStep } from '../../src/services/chunk-step.service';
import { OperationService } from '../../src/services/operation.service';
import { createTestApp, TestApp } from '../support/app-context';

describe('queue health: a chunk reads the operations table through its indexes (real PostgreSQL)', () => {
  let t: TestApp;

  before(async () => {
    t = await createTestApp({ BATCH_PROCESS_OPERATION_LIMIT: '1000' });
    await t.db.query(`CREATE TABLE public.events (id int PRIMARY KEY)`);
  });
  after(() => t.close());

  /** The table's cumulative statistics, once PostgreSQL has published at least `inserted` inserts and `updated` updates. */
  async function tableStats(inserted: number, updated: number): Promise<{ seqScans: number }> {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(100)) {
      const [s] = await t.db.query<{ seq_scan: string; n_tup_ins: string; n_tup_upd: string }>(
        `SELECT seq_scan, n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relid = 'batch.operations'::regclass`);
      if (Number(s.n_tup_ins) >= inserted && Number(s.n_tup_upd) >= updated) return { seqScans: Number(s.seq_scan) };
    }
    throw new Error('statistics were not published');
  }

  it('claims and settles a chunk without scanning the settled rows', async () => {
    const client = await t.client('health');
    await t.db.query(
      `INSERT INTO batch.operations (client_id, target, type, row_values, status, settled_at)
       SELECT $1, 'public.events', 'insert', jsonb_build_object('id', -g), 'COMPLETED', now() FROM generate_series(1, 100000) g`,
      [client.id],
    );
    await t.get(OperationService).createMany(client, Array.from({ length: 1000 }, (_, i) => ({ target: 'events', type: 'insert' as const, values: { id: i } })));
    await t.db.query(`ANALYZE batch.operations`);
    const before = await tableStats(101_000, 0);

    assert.equal((await t.get(ChunkStep).execute()).read, 1000);

    const settled = await tableStats(101_000, 1000);
    assert.equal(settled.seqScans, before.seqScans, 'sequential scans of batch.operations during the chunk');
  });
});
