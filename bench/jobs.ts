import { setTimeout as sleep } from 'node:timers/promises';
import type { BatchServiceClient, IJobExecution } from '../src/client';
import { CreateStream, percentile } from './latency';
import type { Figure } from './report';
import { BenchService } from './service';
import { TABLE } from './target';

/** Polls an execution (every 20 ms) until `done` says so. */
async function until(
  rpc: BatchServiceClient,
  id: string,
  done: (execution: IJobExecution) => boolean,
): Promise<IJobExecution> {
  for (;;) {
    const execution = await rpc.getJobExecution(id);
    if (done(execution)) return execution;
    await sleep(20);
  }
}

const ended = (e: IJobExecution) => ['COMPLETED', 'FAILED', 'STOPPED'].includes(e.status);

/**
 * Jobs: the `copy` job of `rows` rows of the drain's table against one `INSERT INTO … SELECT` in one transaction (the
 * same rows, the same database, the same run), in one partition and in four over two worker processes; the queue's
 * p99 create → notified at `rate`/s while a copy runs against its p99 without one; launch → STARTED with idle workers.
 */
export async function benchJobs(options: { rows: number; rate: number }): Promise<Figure[]> {
  const service = new BenchService();
  const { db } = service;
  try {
    await service.start(['all', 'worker']);
    await db.query(`CREATE TABLE public.source ${TABLE}`);
    for (const table of ['oneshot', 'copied', 'partitioned', 'during'])
      await db.query(`CREATE TABLE ${table} ${TABLE}`);
    await db.query(`CREATE TABLE public.bench (id bigserial PRIMARY KEY, qty int NOT NULL, note text)`);
    await db.query(
      `INSERT INTO source SELECT g, g % 100, (g % 1000) / 10.0, 'note ' || g, '2026-11-21T10:00:00Z'
         FROM generate_series(1, ${options.rows}) g`,
    );
    await db.query(`VACUUM ANALYZE source`);
    const rpc = service.rpc();
    const copy = async (target: string, options: Record<string, number> = {}) => {
      const started = performance.now();
      const launched = await rpc.launchJob('copy', { source: 'public.source', target: `public.${target}` }, options);
      const done = await until(rpc, launched.id, ended);
      if (done.status !== 'COMPLETED') throw new Error(`copy into ${target}: ${JSON.stringify(done.exitStatus)}`);
      return { seconds: (performance.now() - started) / 1000, execution: done };
    };

    const oneShotStarted = performance.now();
    await db.query(`INSERT INTO oneshot SELECT * FROM source`);
    const oneShot = options.rows / ((performance.now() - oneShotStarted) / 1000);
    const single = await copy('copied');
    const partitioned = await copy('partitioned', { partitions: 4 });
    const baseline = { name: 'INSERT … SELECT, one transaction', value: oneShot };

    // launch → STARTED, one launch at a time with the workers idle
    const launches: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const launched = await rpc.launchJob('copy', {
        source: 'public.source',
        target: 'public.during',
        mode: 'upsert',
        to: i + 1,
      });
      await until(rpc, launched.id, (e) => e.status !== 'STARTING');
      launches.push(performance.now() - started);
      await until(rpc, launched.id, ended);
    }

    // the queue's latency over the copy's duration, without a copy and with one
    const stream = new CreateStream(service, options.rate);
    await stream.start();
    await sleep(3000);
    stream.measuring = true;
    await sleep(single.seconds * 1000);
    const without = percentile(await stream.stop(), 99);
    await db.query(`TRUNCATE during`);
    const loaded = new CreateStream(service, options.rate);
    await loaded.start();
    await sleep(3000);
    loaded.measuring = true;
    const during = await copy('during', { chunkSize: 10_000 });
    const withCopy = percentile(await loaded.stop(), 99);
    await rpc.close();

    const rows = options.rows.toLocaleString('en');
    return [
      {
        name: `copy ${rows} rows, one partition`,
        value: options.rows / single.seconds,
        unit: 'rows/s',
        baseline,
        target: 0.5,
        note: `launch to COMPLETED, polled over RPC; ${single.execution.steps[0].commitCount} chunks`,
      },
      {
        name: `copy ${rows} rows, 4 partitions, 2 worker processes`,
        value: options.rows / partitioned.seconds,
        unit: 'rows/s',
        baseline,
      },
      {
        name: `queue p99 create → notified at ${options.rate}/s while a copy runs`,
        value: withCopy,
        unit: 'ms',
        baseline: { name: 'without a copy', value: without },
        target: 2,
        max: true,
        note: `over the copy's ${during.seconds.toFixed(1)} s`,
      },
      {
        name: 'launch → STARTED p50, workers idle',
        value: percentile(
          launches.sort((a, b) => a - b),
          50,
        ),
        unit: 'ms',
        target: 200,
        max: true,
      },
    ];
  } finally {
    await service.stop();
  }
}
