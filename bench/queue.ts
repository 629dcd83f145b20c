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
 * Queue health: the cost of claiming a chunk of 1,000 pending operations, of the queue stats (/api/stats, the
 * dashboard, every metrics scrape) and of a retention run with nothing old enough to delete, with no settled
 * operations in the table, and again with `settled` of them (as after millions of operations, all retained).
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
      db
        .transaction(async (tx: PoolClient) => {
          const claimed = await reader.read(tx, options.chunk);
          if (claimed.length !== options.chunk) throw new Error(`claimed ${claimed.length}`);
          throw Object.assign(new Error('rollback'), { rollback: true });
        })
        .catch((error: { rollback?: boolean }) => {
          if (!error.rollback) throw error;
        });
    const stats = () => t.get(StatsService).queue(null);
    const retention = () => t.get(RetentionService).purge(); // nothing is old enough to go
    const measure = async () => ({
      claim: await medianMs(claim),
      stats: await medianMs(stats),
      retention: await medianMs(retention),
    });
    await enqueue('PENDING', options.chunk);
    await t.db.query('VACUUM ANALYZE batch.operations');
    const empty = await measure();
    await enqueue('COMPLETED', options.settled);
    await t.get(RetentionService).foldCounts();
    await t.db.query('VACUUM ANALYZE batch.operations');
    const full = await measure();
    const settled = `${options.settled.toLocaleString('en-US')} settled rows (median)`;
    const figure = (name: string, key: keyof typeof full): Figure => ({
      name: `${name} with ${settled}`,
      value: full[key],
      unit: 'ms',
      baseline: { name: 'no settled rows', value: empty[key] },
      target: 1.25,
      max: true,
    });
    return [
      figure(`claim ${options.chunk}`, 'claim'),
      figure('queue stats', 'stats'),
      figure('retention run, nothing to delete', 'retention'),
    ];
  } finally {
    await t.close();
  }
}
