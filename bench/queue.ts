import type { PoolClient } from 'pg';
import { ItemReader } from '../src/interfaces/chunk.interfaces';
import { Database } from '../src/services/database';
import { RetentionService } from '../src/services/retention.service';
import { StatsService } from '../src/services/stats.service';
import { createTestApp } from '../test/support/app-context';
import type { Figure } from './report';

/** The median of 101 runs, in ms. */
async function medianMs(run: () => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 101; i++) {
    const started = process.hrtime.bigint();
    await run();
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)];
}

/**
 * Queue health: the cost of claiming a chunk of 1,000 pending operations, and of the queue stats (/api/stats, the
 * dashboard, every metrics scrape), with no settled operations in the table, and again with `settled` of them (as
 * after millions of operations, before retention catches up).
 */
export async function benchQueue(options: { settled: number; chunk: number }): Promise<Figure[]> {
  const t = await createTestApp();
  try {
    const client = await t.client('queue');
    await t.db.query(`CREATE TABLE public.bench (id int PRIMARY KEY)`);
    const reader = t.app.get<ItemReader>(ItemReader);
    const db = t.get(Database);
    const enqueue = (status: string, count: number) =>
      t.db.query(
        `INSERT INTO batch.operations (client_id, target, type, row_values, status, settled_at)
         SELECT $1, 'public.bench', 'insert', jsonb_build_object('id', g), $2, CASE WHEN $2 = 'PENDING' THEN NULL ELSE now() END
           FROM generate_series(1, $3::int) g`,
        [client.id, status, count],
      );
    const claim = () =>
      db.transaction(async (tx: PoolClient) => {
        const claimed = await reader.read(tx, options.chunk);
        if (claimed.length !== options.chunk) throw new Error(`claimed ${claimed.length}`);
        throw Object.assign(new Error('rollback'), { rollback: true });
      }).catch((error: { rollback?: boolean }) => {
        if (!error.rollback) throw error;
      });
    const stats = () => t.get(StatsService).queue(null);
    await enqueue('PENDING', options.chunk);
    await t.db.query('VACUUM ANALYZE batch.operations');
    const empty = { claim: await medianMs(claim), stats: await medianMs(stats) };
    await enqueue('COMPLETED', options.settled);
    await t.get(RetentionService).foldCounts();
    await t.db.query('VACUUM ANALYZE batch.operations');
    const full = { claim: await medianMs(claim), stats: await medianMs(stats) };
    const settled = `${options.settled.toLocaleString('en-US')} settled rows (median)`;
    return [
      { name: `claim ${options.chunk} with ${settled}`, value: full.claim, unit: 'ms', baseline: { name: 'no settled rows', value: empty.claim }, target: 1.25, max: true },
      { name: `queue stats with ${settled}`, value: full.stats, unit: 'ms', baseline: { name: 'no settled rows', value: empty.stats }, target: 1.25, max: true },
    ];
  } finally {
    await t.close();
  }
}
