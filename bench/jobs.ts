import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { BatchServiceClient, IJobExecution } from '../src/client';
import { CreateStream, percentile } from './latency';
import type { Figure } from './report';
import { BenchService } from './service';
import { TABLE } from './target';
import { checkpoint } from './drain';
import { dbClientConfig } from '../test/support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../test/support/test-database';

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
 * same rows, the same database, the same run), in one partition and in four over two worker processes; from another
 * database (BATCH_DATABASES, on the same server) against a COPY piped from there by hand (pipedCopy); the queue's
 * p99 create → notified at `rate`/s while a copy runs against its p99 without one; launch → STARTED with idle workers.
 */
export async function benchJobs(options: { rows: number; rate: number }): Promise<Figure[]> {
  const legacy = uniqueName('bench_legacy');
  const { host, port, user } = dbClientConfig(legacy);
  const service = new BenchService({
    BATCH_DATABASES: JSON.stringify({ legacy: `postgres://${user}@${host}:${port}/${legacy}` }),
  });
  const { db } = service;
  await createDatabase(legacy);
  const legacyDb = new Client(dbClientConfig(legacy));
  await legacyDb.connect();
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
    await legacyDb.query(`CREATE TABLE public.source ${TABLE}`);
    await legacyDb.query(
      `INSERT INTO source SELECT g, g % 100, (g % 1000) / 10.0, 'note ' || g, '2026-11-21T10:00:00Z'
         FROM generate_series(1, ${options.rows}) g`,
    );
    await legacyDb.query(`VACUUM ANALYZE source`);
    for (const table of ['piped', 'across']) await db.query(`CREATE TABLE ${table} ${TABLE}`);
    const rpc = service.rpc();
    const copy = async (target: string, options: Record<string, number> = {}, source = 'public.source') => {
      const started = performance.now();
      const launched = await rpc.launchJob('copy', { source, target: `public.${target}` }, options);
      const done = await until(rpc, launched.id, ended);
      if (done.status !== 'COMPLETED') throw new Error(`copy into ${target}: ${JSON.stringify(done.exitStatus)}`);
      return { seconds: (performance.now() - started) / 1000, execution: done };
    };

    await checkpoint(db);
    const oneShotStarted = performance.now();
    await db.query(`INSERT INTO oneshot SELECT * FROM source`);
    const oneShot = options.rows / ((performance.now() - oneShotStarted) / 1000);
    await checkpoint(db);
    const single = await copy('copied');
    await checkpoint(db);
    const partitioned = await copy('partitioned', { partitions: 4 });
    const baseline = { name: 'INSERT … SELECT, one transaction', value: oneShot };
    const piped = options.rows / (await pipedCopy(legacy, service.env.DB_NAME, 'source', 'piped'));
    await checkpoint(db);
    const across = await copy('across', {}, 'legacy:public.source');

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
    await checkpoint(db);
    const stream = new CreateStream(service, options.rate);
    await stream.start();
    await sleep(3000);
    stream.measuring = true;
    await sleep(single.seconds * 1000);
    const without = percentile(await stream.stop(), 99);
    await db.query(`TRUNCATE during`);
    await checkpoint(db);
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
        name: `copy ${rows} rows from another database, one partition`,
        value: options.rows / across.seconds,
        unit: 'rows/s',
        baseline: { name: 'COPY TO STDOUT piped into COPY FROM STDIN, one transaction', value: piped },
        target: 0.7,
        note: `launch to COMPLETED; ${across.execution.steps[0].commitCount} chunks`,
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
    await legacyDb.end();
    await service.stop();
    await dropDatabase(legacy);
  }
}

/**
 * What a user would do by hand to move a table between two databases: `COPY … TO STDOUT` from one piped into `COPY …
 * FROM STDIN` of the other, in one transaction; its seconds.
 */
async function pipedCopy(from: string, to: string, source: string, target: string): Promise<number> {
  const [reader, writer] = [new Client(dbClientConfig(from)), new Client(dbClientConfig(to))];
  await Promise.all([reader.connect(), writer.connect()]);
  try {
    await checkpoint(writer);
    const started = performance.now();
    await writer.query('BEGIN');
    await pipeline(
      reader.query(copyTo(`COPY ${source} TO STDOUT`)),
      writer.query(copyFrom(`COPY ${target} FROM STDIN`)),
    );
    await writer.query('COMMIT');
    return (performance.now() - started) / 1000;
  } finally {
    await Promise.all([reader.end(), writer.end()]);
  }
}
