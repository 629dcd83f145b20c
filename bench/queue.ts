import type { PoolClient } from 'pg';
import { ChunkClaimer } from '../src/services/engine/chunk-claimer.service';
import { Database } from '../src/services/storage/database';
import { operationCount } from '../src/services/storage/id-runs';
import { OperationService } from '../src/services/ingest/operation.service';
import { RetentionService } from '../src/services/storage/retention.service';
import { StatsService } from '../src/services/queue-views/stats.service';
import { createTestApp } from '../test/support/app-context';
import type { Figure } from './report';

/**
 * The medians, in ms, of 101 timings of each of two runs taken in turns (which goes first alternating), so that the
 * machine's speed, which swings from one minute to the next, weighs on both alike.
 */
async function pairedMediansMs(runs: [() => Promise<unknown>, () => Promise<unknown>]): Promise<[number, number]> {
  const samples: [number[], number[]] = [[], []];
  const time = async (which: 0 | 1) => {
    const started = process.hrtime.bigint();
    await runs[which]();
    samples[which].push(Number(process.hrtime.bigint() - started) / 1e6);
  };
  for (let i = 0; i < 101; i++) {
    const first = (i % 2) as 0 | 1;
    await time(first);
    await time((1 - first) as 0 | 1);
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return [median(samples[0]), median(samples[1])];
}

/**
 * Queue health, measured in-process (the service's own classes, no broker): the cost of claiming a chunk of 1,000
 * pending operations, of the queue stats (/api/stats, the dashboard, every metrics scrape) and of a retention run with
 * nothing old enough to delete, on a database with no settled operations and on one with `settled` of them (as after
 * millions of operations, all retained), the two timed in turns.
 */
export async function benchQueue(options: { settled: number; chunk: number }): Promise<Figure[]> {
  const queues: Queue[] = [];
  try {
    for (const settled of [0, options.settled]) queues.push(await queueWith(settled, options.chunk));
    const [empty, full] = queues;
    const settled = `${options.settled.toLocaleString('en-US')} settled rows (in-process, median)`;
    const figure = async (name: string, run: (queue: Queue) => Promise<unknown>): Promise<Figure> => {
      const [baseline, value] = await pairedMediansMs([() => run(empty), () => run(full)]);
      return {
        name: `${name} with ${settled}`,
        value,
        unit: 'ms',
        baseline: { name: 'no settled rows', value: baseline },
        target: 1.25,
        max: true,
      };
    };
    return [
      await figure(`claim ${options.chunk}`, (queue) => queue.claim()),
      await figure('queue stats', (queue) => queue.stats()),
      await figure('retention run, nothing to delete', (queue) => queue.retention()),
    ];
  } finally {
    for (const queue of queues) await queue.close();
  }
}

interface Queue {
  claim(): Promise<void>;
  stats(): Promise<unknown>;
  retention(): Promise<unknown>;
  close(): Promise<void>;
}

/** A database whose queue holds `chunk` pending operations behind `settled` settled ones. */
async function queueWith(settled: number, chunk: number): Promise<Queue> {
  const t = await createTestApp();
  const client = await t.client('queue');
  await t.db.query(`CREATE TABLE public.bench (id int PRIMARY KEY)`);
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
  await t.get(OperationService).createMany(
    client,
    Array.from({ length: chunk }, (_, i) => ({ target: 'bench', type: 'insert' as const, values: { id: i } })),
  );
  // settled after the pending ones, whose stream's position is before them
  for (let done = 0; done < settled; done += 1_000_000) await settle(Math.min(1_000_000, settled - done));
  await t.get(RetentionService).foldCounts();
  await t.db.query(
    'VACUUM ANALYZE batch.operations, batch.streams, batch.deferred, batch.outcomes, batch.settled_runs',
  );
  const claimer = t.get(ChunkClaimer);
  return {
    claim: () =>
      t
        .get(Database)
        .transaction(async (tx: PoolClient) => {
          const claimed = await claimer.claim(tx, chunk);
          if (operationCount(claimed) !== chunk) throw new Error(`claimed ${operationCount(claimed)}`);
          throw Object.assign(new Error('rollback'), { rollback: true });
        })
        .catch((error: { rollback?: boolean }) => {
          if (!error.rollback) throw error;
        }),
    stats: () => t.get(StatsService).queue(null),
    retention: () => t.get(RetentionService).purge(), // nothing is old enough to go
    close: () => t.close(),
  };
}
