import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { BatchServiceClient, ICreateBatchOperationRequest, SettledEventsConsumer } from '../src/client';
import { CpuMeter } from './cpu';
import { RMQ_URL, TestDb } from '../test/support/harness';
import { http, serviceEnv } from '../test/support/service-process';
import { dropDatabase } from '../test/support/test-database';
import type { Figure } from './report';
import { npmStart, NpmService } from './service';

/** The target every figure writes: five columns of common types. */
export const TABLE = `(id int PRIMARY KEY, qty int NOT NULL, price numeric(12,2), note text, at timestamptz)`;
export const TYPES = ['insert', 'upsert', 'update', 'increment', 'delete'] as const;
export type Type = (typeof TYPES)[number];

/** Operation i (1-based) of a backlog of one type, as a caller sends it. */
export function operation(type: Type, i: number): ICreateBatchOperationRequest {
  const row = { id: i, qty: i % 100, price: (i % 1000) / 10, note: `note ${i}`, at: '2026-11-21T10:00:00Z' };
  switch (type) {
    case 'insert':
    case 'upsert':
      return { target: 'bench', type, values: row };
    case 'update':
      return { target: 'bench', type, key: { id: i }, values: { qty: i % 7, note: `updated ${i}` } };
    case 'increment':
      return { target: 'bench', type, key: { id: i }, values: { qty: 1 } };
    case 'delete':
      return { target: 'bench', type, key: { id: i } };
  }
}

/** Row i as COPY's text format reads it (the same values as operation i's insert). */
export const copyLine = (i: number) => `${i}\t${i % 100}\t${(i % 1000) / 10}\tnote ${i}\t2026-11-21T10:00:00Z\n`;

/** The API and worker processes of one service, started with `npm start`, on a database, queue and exchange of their own. */
export class BenchService {
  readonly env = serviceEnv({ LOG_LEVEL: 'error', BATCH_PROCESS_OPERATION_INTERVAL: '100' });
  readonly db = new TestDb(this.env.DB_NAME);
  api!: NpmService;
  worker!: NpmService;
  apiKey = '';

  async start(extraEnv: Record<string, string> = {}): Promise<void> {
    Object.assign(this.env, extraEnv);
    this.api = await npmStart({ ...this.env, BATCH_ROLE: 'api' });
    this.worker = await npmStart({ ...this.env, BATCH_ROLE: 'worker' });
    const created = await http<{ apiKey: string }>(
      { url: this.api.url, adminKey: this.env.BATCH_ADMIN_API_KEY } as never,
      'POST',
      '/api/clients',
      this.env.BATCH_ADMIN_API_KEY,
      { name: 'bench', targets: ['*'] },
    );
    this.apiKey = created.body.apiKey;
  }

  rpc(): BatchServiceClient {
    return new BatchServiceClient({
      url: RMQ_URL,
      queue: this.env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey: this.apiKey,
      timeoutMs: 120_000,
    });
  }

  /** Counts the operations notified to the bench client; `settled()` resolves once `count` have been. */
  async notifications(): Promise<{ settled(count: number): Promise<number>; stop(): Promise<void> }> {
    let seen = 0;
    let waiter: { count: number; resolve: (at: number) => void } | null = null;
    const consumer = new SettledEventsConsumer({
      url: RMQ_URL,
      exchange: this.env.BATCH_SERVICE_EVENTS_EXCHANGE,
      client: 'bench',
      prefetch: 200,
    });
    await consumer.start((event) => {
      seen += event.operations.length;
      if (waiter && seen >= waiter.count) waiter.resolve(Date.now());
    });
    return {
      settled: (count) =>
        seen >= count ? Promise.resolve(Date.now()) : new Promise((resolve) => (waiter = { count, resolve })),
      stop: () => consumer.stop(),
    };
  }

  async stop(): Promise<void> {
    await this.worker?.stop();
    await this.api?.stop();
    await this.db.close();
    await dropDatabase(this.env.DB_NAME);
  }
}

/** Sends operations 1..count (or `from`..) in messages of 1,000, four in flight. */
export async function fill(
  rpc: BatchServiceClient,
  count: number,
  make: (i: number) => ICreateBatchOperationRequest,
  from = 1,
): Promise<void> {
  let next = from;
  const end = from + count;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < end) {
        const first = next;
        next = Math.min(end, next + 1000);
        await rpc.createOperations(Array.from({ length: next - first }, (_, k) => make(first + k)));
      }
    }),
  );
}

interface Drained {
  rate: number;
  notifiedRate: number;
  /** Operations per second over the first and the last fifth of the backlog. */
  firstFifth: number;
  lastFifth: number;
  chunks: number;
  cpu: string;
}

/**
 * Drains a backlog of `rows` operations of one type: the backlog is filled through RPC while the target is locked
 * (the worker's first chunk waits on it), then released; the drain is timed from the release to the last operation
 * settled (its commit made the target rows visible), the notifications to the last one received.
 */
export async function drainBacklog(service: BenchService, type: Type, rows: number, scheduled = 0): Promise<Drained> {
  const { db } = service;
  await db.query(`DROP TABLE IF EXISTS public.bench; CREATE TABLE public.bench ${TABLE}`);
  if (type !== 'insert')
    await db.query(`INSERT INTO public.bench SELECT g, 1, 1, 'seed', now() FROM generate_series(1, $1) g`, [rows]);
  await db.query(`VACUUM ANALYZE public.bench`);
  const rpc = service.rpc();
  const notified = await service.notifications();
  if (scheduled > 0) {
    const later = new Date(Date.now() + 86_400_000).toISOString();
    await db.query(`CREATE TABLE IF NOT EXISTS public.bench_later ${TABLE}`);
    await fill(rpc, scheduled, (i) => ({ ...operation('insert', i), target: 'bench_later', notBefore: later }));
  }
  const settledBefore = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM batch.outcomes`))[0].n);
  const lock = new Client({ host: '127.0.0.1', user: 'postgres', database: service.env.DB_NAME });
  await lock.connect();
  await lock.query('BEGIN');
  await lock.query('LOCK TABLE public.bench IN ACCESS EXCLUSIVE MODE');
  await fill(rpc, rows, (i) => operation(type, i));
  const cpu = new CpuMeter({ api: service.api.pid(), worker: service.worker.pid() });
  const released = Date.now();
  await lock.query('COMMIT');
  await lock.end();
  const notifiedAt = await notified.settled(rows);
  const cpuPerOperation = cpu.perUnit(rows);
  await notified.stop();
  await rpc.close();

  const [run] = await db.query<{
    settled: string;
    completed: string;
    first: Date;
    fifth: Date;
    fourFifths: Date;
    last: Date;
    chunks: string;
  }>(
    `SELECT count(*) AS settled, count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
            min(settled_at) AS first, percentile_disc(0.2) WITHIN GROUP (ORDER BY settled_at) AS fifth,
            percentile_disc(0.8) WITHIN GROUP (ORDER BY settled_at) AS "fourFifths", max(settled_at) AS last,
            count(DISTINCT execution_id) AS chunks
       FROM (SELECT * FROM batch.outcomes ORDER BY operation_id OFFSET $1) o`,
    [settledBefore],
  );
  if (Number(run.completed) !== rows) throw new Error(`${type}: ${run.completed} of ${rows} completed`);
  const seconds = (run.last.getTime() - released) / 1000;
  const fifthSeconds = (run.fifth.getTime() - released) / 1000;
  const lastFifthSeconds = (run.last.getTime() - run.fourFifths.getTime()) / 1000;
  return {
    rate: rows / seconds,
    notifiedRate: rows / ((notifiedAt - released) / 1000),
    firstFifth: (0.2 * rows) / fifthSeconds,
    lastFifth: (0.2 * rows) / lastFifthSeconds,
    chunks: Number(run.chunks),
    cpu: cpuPerOperation,
  };
}

/** COPY of `rows` rows into a fresh table of the same shape, committed every `perCommit` rows; rows per second. */
export async function copyRate(database: string, rows: number, perCommit = rows): Promise<number> {
  const copier = new Client({ host: '127.0.0.1', user: 'postgres', database });
  await copier.connect();
  try {
    await copier.query(`DROP TABLE IF EXISTS public.bench_copy; CREATE TABLE public.bench_copy ${TABLE}`);
    const started = process.hrtime.bigint();
    for (let first = 1; first <= rows; first += perCommit) {
      const lines: string[] = [];
      for (let i = first; i < Math.min(rows + 1, first + perCommit); i++) lines.push(copyLine(i));
      await copier.query('BEGIN');
      await pipeline(Readable.from([lines.join('')]), copier.query(copyFrom(`COPY public.bench_copy FROM STDIN`)));
      await copier.query('COMMIT');
    }
    return rows / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    await copier.query(`DROP TABLE IF EXISTS public.bench_copy`).catch(() => undefined);
    await copier.end();
  }
}

/** What a caller would do without the service: one autocommit INSERT per row, one connection; rows per second. */
export async function perRowRate(database: string, rows: number): Promise<number> {
  const client = new Client({ host: '127.0.0.1', user: 'postgres', database });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS public.bench_rows; CREATE TABLE public.bench_rows ${TABLE}`);
    const started = process.hrtime.bigint();
    for (let i = 1; i <= rows; i++) {
      await client.query({
        name: 'insert-one',
        text: `INSERT INTO public.bench_rows (id, qty, price, note, at) VALUES ($1, $2, $3, $4, $5)`,
        values: [i, i % 100, (i % 1000) / 10, `note ${i}`, '2026-11-21T10:00:00Z'],
      });
    }
    return rows / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    await client.query(`DROP TABLE IF EXISTS public.bench_rows`).catch(() => undefined);
    await client.end();
  }
}

/**
 * The drain as users get it: one worker started with `npm start` at the default chunk limit, a backlog of each type
 * filled through RPC, against COPY of the same rows (in one transaction and committed per 1,000), the caller's own
 * per-row autocommit INSERT, and (bullmq.ts) a BullMQ queue with a NestJS worker.
 */
export async function benchDrain(options: {
  rows: number;
  otherRows: number;
  sample: number;
  scheduled: number;
}): Promise<{ figures: Figure[]; service: BenchService }> {
  const service = new BenchService();
  await service.start();
  const figures: Figure[] = [];
  const database = service.env.DB_NAME;
  const insert = await drainBacklog(service, 'insert', options.rows);
  const copy = await copyRate(database, options.rows);
  const copyPerChunk = await copyRate(database, options.rows, 1000);
  const perRow = await perRowRate(database, options.sample);
  figures.push(
    {
      name: `drain insert, ${options.rows.toLocaleString('en-US')} pending`,
      value: insert.rate,
      unit: 'ops/s',
      baseline: { name: 'COPY, one transaction', value: copy },
      target: 0.25,
      note: `CPU per operation: ${insert.cpu}; ${insert.chunks} chunks`,
    },
    {
      name: 'drain insert vs COPY committed per 1,000',
      value: insert.rate,
      unit: 'ops/s',
      baseline: { name: 'COPY per 1,000', value: copyPerChunk },
    },
    {
      name: 'drain insert vs per-row INSERT',
      value: insert.rate,
      unit: 'ops/s',
      baseline: { name: 'autocommit INSERT per row', value: perRow },
      target: 30,
    },
    {
      name: 'drain insert: first fifth vs last fifth',
      value: insert.firstFifth,
      unit: 'ops/s',
      baseline: { name: 'last fifth', value: insert.lastFifth },
      target: 0.8,
    },
    {
      name: 'drain insert, notified',
      value: insert.notifiedRate,
      unit: 'ops/s',
      baseline: { name: 'COPY, one transaction', value: copy },
    },
  );
  if (options.scheduled > 0) {
    const crowded = await drainBacklog(service, 'insert', options.rows, options.scheduled);
    figures.push({
      name: `drain insert with ${options.scheduled.toLocaleString('en-US')} scheduled a day ahead`,
      value: crowded.rate,
      unit: 'ops/s',
      baseline: { name: 'without them', value: insert.rate },
      target: 0.8,
      note: `CPU per operation: ${crowded.cpu}`,
    });
  }
  for (const type of TYPES.filter((t) => t !== 'insert')) {
    const drained = await drainBacklog(service, type, options.otherRows);
    figures.push({
      name: `drain ${type}, ${options.otherRows.toLocaleString('en-US')} pending`,
      value: drained.rate,
      unit: 'ops/s',
      baseline: { name: 'COPY (inserts)', value: copy },
      note: `CPU per operation: ${drained.cpu}`,
    });
  }
  return { figures, service };
}
