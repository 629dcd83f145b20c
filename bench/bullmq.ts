import { Queue } from 'bullmq';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { QUEUE, RowJob } from './bullmq-worker';
import { CpuMeter } from './cpu';
import { TABLE } from './target';
import { dbClientConfig } from '../test/support/shared-services';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * The same backlog of inserts through BullMQ: `rows` jobs added with addBulk (1,000 per call) to a paused queue, then
 * the NestJS worker process (bullmq-worker.ts) started and the queue resumed; timed from the resume to the last row
 * in the target table. Completed jobs are removed, as a queue of this volume must.
 */
export async function bullmqRate(database: string, rows: number): Promise<{ rate: number; cpu: string }> {
  const prefix = `bench-${process.pid}`;
  const db = new Client(dbClientConfig(database));
  await db.connect();
  const queue = new Queue<RowJob>(QUEUE, { connection: { url: REDIS_URL }, prefix });
  const worker = fork(join(__dirname, 'bullmq-worker.js'), [], {
    env: { ...process.env, DB_NAME: database, REDIS_URL, BULLMQ_PREFIX: prefix },
    stdio: 'inherit',
  });
  try {
    await db.query(`DROP TABLE IF EXISTS public.bench_bullmq; CREATE TABLE public.bench_bullmq ${TABLE}`);
    await queue.pause();
    for (let first = 1; first <= rows; first += 1000) {
      const jobs = [];
      for (let id = first; id < Math.min(rows + 1, first + 1000); id++)
        jobs.push({
          name: 'insert',
          data: { id, qty: id % 100, price: (id % 1000) / 10, note: `note ${id}`, at: '2026-11-21T10:00:00Z' },
          opts: { removeOnComplete: true },
        });
      await queue.addBulk(jobs);
    }
    await once(worker, 'message');
    const cpu = new CpuMeter({ 'BullMQ worker': worker.pid! });
    const started = process.hrtime.bigint();
    await queue.resume();
    const count = async () =>
      Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM public.bench_bullmq`)).rows[0].n);
    while ((await count()) < rows) await sleep(100);
    const rate = rows / (Number(process.hrtime.bigint() - started) / 1e9);
    return { rate, cpu: cpu.perUnit(rows) };
  } finally {
    worker.kill('SIGTERM');
    if (worker.exitCode === null) await once(worker, 'exit');
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await db.query(`DROP TABLE IF EXISTS public.bench_bullmq`).catch(() => undefined);
    await db.end();
  }
}
