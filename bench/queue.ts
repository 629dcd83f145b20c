import type { PoolClient } from 'pg';
import { ChunkClaimer } from '../src/services/engine/chunk-claimer.service';
import { Database } from '../src/services/storage/database';
import { operationCount } from '../src/services/storage/id-runs';
import { OperationService } from '../src/services/ingest/operation.service';
import { RetentionService } from '../src/services/storage/retention.service';
import { StatsService } from '../src/services/queue-views/stats.service';
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
 * Queue health, measured in-process (the service's own classes, no broker): the cost of claiming a chunk of 1,000 pending operations, of the queue stats (/api/stats, the
 * dashboard, every metrics scrape) and of a retention run with nothing old enough to delete, with no settled
 * operations in the table, and again with `settled` of them (as after millions of operations, all retained).
 */
export async function benchQueue(options: { settled: number; chunk: number }): Promise<Figure[]> {
  const t = await createTestApp();
  try {
    const client = await t.client('queue');
    await t.db.query(`CREATE TABLE public.bench (id int PRIMARY KEY)`);
    const claimer = t.app.get(ChunkClaimer);
    const db = t.get(Database);
    // settled as chunks record them: one in a hundred failed (an outcome row), the others completed in runs
    const settle = (count: number) =>
      t.db.query(
        `WITH settled AS (
           INSERT INTO batch.operations (client_id, target, type, row_values)
           SELECT $1, 'public.bench', 'insert', jsonb_build_object('id', -g) FROM generate_series(1, $2::int) g
           RETURNING id, client_id, target),
         numbered AS (SELECT id, client_id, target, row_number() OVER (ORDER BY id) - 1 AS n FROM settled),
         failed AS (
           INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, error_code, error_message, settled_at)
           SELECT id, client_id, target, 'FAILED', 1, '23505', 'duplicate key', now() FROM numbered WHERE n % 100 = 99),
         runs AS (
           INSERT INTO batch.settled_runs (first_id, last_id, chunk_id, settled_at)
           SELECT min(id), max(id), 0, now() FROM numbered WHERE n % 100 <> 99 GROUP BY n / 100)
         INSERT INTO batch.operation_counts (client_id, target, status, minute, added, removed)
         SELECT $1, 'public.bench', 'COMPLETED', date_trunc('minute', now()), count(*), 0 FROM numbered WHERE n % 100 <> 99`,
        [client.id, count],
      );
    const claim = () =>
      db
        .transaction(async (tx: PoolClient) => {
          const claimed = await claimer.claim(tx, options.chunk);
          if (operationCount(claimed) !== options.chunk) throw new Error(`claimed ${operationCount(claimed)}`);
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
    await t.get(OperationService).createMany(
      client,
      Array.from({ length: options.chunk }, (_, i) => ({
        target: 'bench',
        type: 'insert' as const,
        values: { id: i },
      })),
    );
    await t.db.query(
      'VACUUM ANALYZE batch.operations, batch.streams, batch.deferred, batch.outcomes, batch.settled_runs',
    );
    const empty = await measure();
    for (let done = 0; done < options.settled; done += 1_000_000)
      await settle(Math.min(1_000_000, options.settled - done));
    await t.get(RetentionService).foldCounts();
    await t.db.query(
      'VACUUM ANALYZE batch.operations, batch.streams, batch.deferred, batch.outcomes, batch.settled_runs',
    );
    const full = await measure();
    const settled = `${options.settled.toLocaleString('en-US')} settled rows (in-process, median)`;
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
