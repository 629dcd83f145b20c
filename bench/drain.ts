import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { BatchServiceClient, ICreateBatchOperationRequest } from '../src/client';
import { bullmqRate } from './bullmq';
import { CpuMeter } from './cpu';
import type { Figure } from './report';
import { copyLine, operation, TABLE, TYPES, Type } from './target';
import { BenchService } from './service';
import { dbClientConfig } from '../test/support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../test/support/test-database';

/**
 * Writes out the dirty buffers before a timed phase: PostgreSQL requests a checkpoint after every max_wal_size of WAL,
 * and the phases before write gigabytes, so one would otherwise fall into one phase or another at random, and the
 * same figure swing between identical runs.
 */
export async function checkpoint(db: { query(text: string): Promise<unknown> }): Promise<void> {
  await db.query('CHECKPOINT');
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

/** Fills a fresh bench table with rows 1..`rows` for the other types to change, and analyzes it. */
export async function seed(
  db: { query(text: string, values?: unknown[]): Promise<unknown> },
  table: string,
  rows: number,
) {
  await db.query(`INSERT INTO ${table} SELECT g, 1, 1, 'seed', now() FROM generate_series(1, $1) g`, [rows]);
  await db.query(`VACUUM ANALYZE ${table}`);
}

/** A backlog to drain: `count` operations made by `make` (1-based), into the bench table seeded with `seeded` rows. */
interface Backlog {
  count: number;
  make: (i: number) => ICreateBatchOperationRequest;
  seeded: number;
  scheduled?: number;
  /** Notifications consumed on this machine while it drains (else held in their queue, and received after). */
  consumed?: boolean;
  /** The bench table's database where it is not the service's own (its operations name it: `billing:bench`). */
  in?: Client;
}

/**
 * Drains a backlog: it is filled through RPC with no worker running, then a worker is started with `npm start`, as a
 * deploy after an outage would find it; the drain is timed from its first chunk's start to the last operation settled
 * (its commit made the target rows visible), the notifications to the last one confirmed by the broker, or, where
 * `consumed`, received. Unless `consumed`, they are received after (and counted, untimed): callers consume them on
 * machines of their own, and a consumer here would take the CPU the service drains with. The worker is stopped after.
 */
export async function drainBacklog(service: BenchService, backlog: Backlog): Promise<Drained> {
  const { db } = service;
  const { count, scheduled = 0 } = backlog;
  const tables: { query(text: string, values?: unknown[]): Promise<unknown> } = backlog.in ?? db;
  await tables.query(`DROP TABLE IF EXISTS public.bench; CREATE TABLE public.bench ${TABLE}`);
  await seed(tables, 'public.bench', backlog.seeded);
  const rpc = service.rpc();
  const consumed = backlog.consumed ? await service.notifications() : null;
  const held = consumed ? null : await service.heldNotifications();
  if (scheduled > 0) {
    const later = new Date(Date.now() + 86_400_000).toISOString();
    await db.query(`CREATE TABLE IF NOT EXISTS public.bench_later ${TABLE}`);
    await fill(rpc, scheduled, (i) => ({ ...operation('insert', i), target: 'bench_later', notBefore: later }));
  }
  const [{ last: chunksBefore }] = await db.query<{ last: string }>(
    `SELECT coalesce(max(id), 0) AS last FROM batch.chunks`,
  );
  await fill(rpc, count, backlog.make);
  await checkpoint(db);
  await service.startRole('worker');
  const cpu = new CpuMeter(service.pids());
  const notifiedAt = consumed ? await consumed.settled(count) : await confirmed(db, chunksBefore, count);
  const cpuPerOperation = cpu.perUnit(count);
  await consumed?.stop();
  await held?.receive(count);
  await rpc.close();
  await service.stopRole('worker');

  // Every operation of a chunk is settled at the chunk's end: the drain is the chunks' end times.
  const chunks = await db.query<{ started: Date; settled: Date; operations: number; completed: number }>(
    `SELECT started_at AS started, ended_at AS settled, read_count AS operations, write_count AS completed
       FROM batch.chunks WHERE id > $1 AND status = 'COMPLETED' ORDER BY ended_at`,
    [chunksBefore],
  );
  const completed = chunks.reduce((sum, chunk) => sum + chunk.completed, 0);
  if (completed !== count) throw new Error(`${completed} of ${count} completed`);
  const began = Math.min(...chunks.map((chunk) => chunk.started.getTime()));
  const ends = [began, ...chunks.map((chunk) => chunk.settled.getTime())];
  const timed = chunks.map((chunk, i) => ({ operations: chunk.operations, ms: ends[i + 1] - ends[i] }));
  return {
    rate: count / ((ends[ends.length - 1] - began) / 1000),
    notifiedRate: count / ((notifiedAt - began) / 1000),
    firstFifth: fifthRate(timed, count),
    lastFifth: fifthRate(timed.reverse(), count),
    chunks: chunks.length,
    cpu: cpuPerOperation,
  };
}

/**
 * When the broker confirmed the last notification of the chunks after `chunksBefore`, once they have settled `count`
 * operations and each of their outbox messages is sent (the relay marks it sent on the broker's confirm).
 */
async function confirmed(db: BenchService['db'], chunksBefore: string, count: number): Promise<number> {
  for (;;) {
    const [state] = await db.query<{ settled: number; unsent: boolean; sent: Date | null }>(
      `SELECT (SELECT coalesce(sum(read_count), 0)::int FROM batch.chunks WHERE id > $1 AND status = 'COMPLETED') AS settled,
              EXISTS (SELECT FROM batch.outbox WHERE chunk_id > $1 AND sent_at IS NULL) AS unsent,
              (SELECT max(sent_at) FROM batch.outbox WHERE chunk_id > $1) AS sent`,
      [chunksBefore],
    );
    if (state.settled >= count && !state.unsent && state.sent) return state.sent.getTime();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Operations per second over the first chunks that hold a fifth of the backlog (each chunk timed from the one before). */
function fifthRate(chunks: { operations: number; ms: number }[], rows: number): number {
  let operations = 0;
  let ms = 0;
  for (const chunk of chunks) {
    operations += chunk.operations;
    ms += chunk.ms;
    if (operations >= rows / 5) break;
  }
  return operations / (ms / 1000);
}

/** COPY of `rows` rows into a fresh table of the same shape, committed every `perCommit` rows; rows per second. */
export async function copyRate(database: string, rows: number, perCommit = rows): Promise<number> {
  const copier = new Client(dbClientConfig(database));
  await copier.connect();
  try {
    await copier.query(`DROP TABLE IF EXISTS public.bench_copy; CREATE TABLE public.bench_copy ${TABLE}`);
    await checkpoint(copier);
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
  const client = new Client(dbClientConfig(database));
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS public.bench_rows; CREATE TABLE public.bench_rows ${TABLE}`);
    await checkpoint(client);
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
 * Each type's statement written by hand, as a caller batching on their own would: values bound as arrays (`unnest`), one
 * transaction per 1,000 rows, into a table of the same shape holding `rows` rows (none for inserts, whose baseline is
 * COPY); rows per second.
 */
const HAND_WRITTEN: Record<Exclude<Type, 'insert'>, { sql: string; values: (i: number) => unknown[] }> = {
  upsert: {
    sql: `INSERT INTO public.bench_hand SELECT * FROM unnest($1::int[], $2::int[], $3::numeric[], $4::text[], $5::timestamptz[])
          ON CONFLICT (id) DO UPDATE SET qty = excluded.qty, price = excluded.price, note = excluded.note, at = excluded.at`,
    values: (i) => Object.values(operation('upsert', i).values!),
  },
  update: {
    sql: `UPDATE public.bench_hand t SET qty = v.qty, note = v.note
            FROM unnest($1::int[], $2::int[], $3::text[]) AS v(id, qty, note) WHERE t.id = v.id`,
    values: (i) => [i, ...Object.values(operation('update', i).values!)],
  },
  increment: {
    sql: `UPDATE public.bench_hand t SET qty = t.qty + v.qty FROM unnest($1::int[], $2::int[]) AS v(id, qty) WHERE t.id = v.id`,
    values: (i) => [i, ...Object.values(operation('increment', i).values!)],
  },
  delete: {
    sql: `DELETE FROM public.bench_hand t USING unnest($1::int[]) AS v(id) WHERE t.id = v.id`,
    values: (i) => [i],
  },
};

/** Statements by hand of `rows` operations of `type`, operation i on row `key(i)`; rows per second. */
export async function handWrittenRate(
  database: string,
  type: Exclude<Type, 'insert'>,
  rows: number,
  key = (i: number) => i,
): Promise<number> {
  const client = new Client(dbClientConfig(database));
  await client.connect();
  const { sql, values } = HAND_WRITTEN[type];
  try {
    await client.query(`DROP TABLE IF EXISTS public.bench_hand; CREATE TABLE public.bench_hand ${TABLE}`);
    await seed(client, 'public.bench_hand', rows);
    await checkpoint(client);
    const started = process.hrtime.bigint();
    for (let first = 1; first <= rows; first += 1000) {
      const batch = Array.from({ length: Math.min(1000, rows + 1 - first) }, (_, k) => values(key(first + k)));
      const columns = batch[0].map((_, c) => batch.map((row) => row[c]));
      await client.query('BEGIN');
      await client.query(sql, columns);
      await client.query('COMMIT');
    }
    return rows / (Number(process.hrtime.bigint() - started) / 1e9);
  } finally {
    await client.query(`DROP TABLE IF EXISTS public.bench_hand`).catch(() => undefined);
    await client.end();
  }
}

/** Operation i of a mixed backlog: each row gets an insert, then two increments and an update, in that order. */
export function mixedOperation(i: number): ICreateBatchOperationRequest {
  const row = Math.ceil(i / 4);
  return operation((['insert', 'increment', 'increment', 'update'] as const)[(i - 1) % 4], row);
}

/**
 * The drain as users get it: one worker started with `npm start` at the default chunk limit (and an API process taking
 * the RPC fill), a backlog of each type and a mixed one, their notifications received after the drain (drainBacklog),
 * and deletes once more with a consumer receiving them meanwhile; inserts against COPY of the same rows (in one transaction and
 * committed per 1,000), the caller's own per-row autocommit INSERT, and a BullMQ queue with a NestJS worker
 * (bullmq.ts); each other type against its statement written by hand (HAND_WRITTEN).
 */
export async function benchDrain(options: {
  rows: number;
  otherRows: number;
  sample: number;
  bullmqRows: number;
  scheduled: number;
}): Promise<Figure[]> {
  const billingName = uniqueName('bench_billing');
  const { host, port, user } = dbClientConfig(billingName);
  const service = new BenchService({
    BATCH_DATABASES: JSON.stringify({ billing: `postgres://${user}@${host}:${port}/${billingName}` }),
  });
  await createDatabase(billingName);
  const billing = new Client(dbClientConfig(billingName));
  await billing.connect();
  try {
    await service.start(['api']);
    const database = service.env.DB_NAME;
    const size = (n: number) => n.toLocaleString('en-US');
    const insert = await drainBacklog(service, { count: options.rows, make: (i) => operation('insert', i), seeded: 0 });
    const elsewhere = await drainBacklog(service, {
      count: options.rows,
      make: (i) => ({ ...operation('insert', i), target: 'billing:bench' }),
      seeded: 0,
      in: billing,
    });
    const copy = await copyRate(database, options.rows);
    const copyPerChunk = await copyRate(database, options.rows, 1000);
    const perRow = await perRowRate(database, options.sample);
    const bullmq = await bullmqRate(database, options.bullmqRows);
    const figures: Figure[] = [
      {
        name: `drain insert, ${size(options.rows)} pending`,
        value: insert.rate,
        unit: 'ops/s',
        baseline: { name: 'COPY, one transaction', value: copy },
        target: 0.7,
        note: `CPU per operation: ${insert.cpu}; ${insert.chunks} chunks`,
      },
      {
        name: `drain insert into another database, ${size(options.rows)} pending`,
        value: elsewhere.rate,
        unit: 'ops/s',
        baseline: { name: "the same into the service's own", value: insert.rate },
        target: 0.8,
        note: `CPU per operation: ${elsewhere.cpu}; ${elsewhere.chunks} chunks`,
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
        baseline: { name: `autocommit INSERT per row (${size(options.sample)})`, value: perRow },
        target: 30,
      },
      {
        name: 'drain insert vs BullMQ + NestJS worker',
        value: insert.rate,
        unit: 'ops/s',
        baseline: { name: `BullMQ, a job per row (${size(options.bullmqRows)})`, value: bullmq.rate },
        target: 1,
        note: `BullMQ CPU per row: ${bullmq.cpu}`,
      },
      {
        name: 'drain insert: first fifth vs last fifth',
        value: insert.firstFifth,
        unit: 'ops/s',
        baseline: { name: 'last fifth', value: insert.lastFifth },
        target: 0.8,
      },
      {
        name: 'drain insert, notified (confirmed by the broker)',
        value: insert.notifiedRate,
        unit: 'ops/s',
        baseline: { name: 'COPY, one transaction', value: copy },
      },
    ];
    let deleteRate = 0;
    for (const type of TYPES.filter((t) => t !== 'insert')) {
      const rows = options.otherRows;
      const drained = await drainBacklog(service, { count: rows, make: (i) => operation(type, i), seeded: rows });
      if (type === 'delete') deleteRate = drained.rate;
      figures.push({
        name: `drain ${type}, ${size(rows)} pending`,
        value: drained.rate,
        unit: 'ops/s',
        baseline: { name: `${type} by hand, arrays, per 1,000`, value: await handWrittenRate(database, type, rows) },
        target: 0.6,
        note: `CPU per operation: ${drained.cpu}; ${drained.chunks} chunks`,
      });
    }
    const consumed = await drainBacklog(service, {
      count: options.otherRows,
      make: (i) => operation('delete', i),
      seeded: options.otherRows,
      consumed: true,
    });
    figures.push({
      name: 'drain delete, its notifications consumed on this machine meanwhile',
      value: consumed.rate,
      unit: 'ops/s',
      baseline: { name: 'received after', value: deleteRate },
      note: `notified (received): ${Math.round(consumed.notifiedRate).toLocaleString('en-US')} ops/s; CPU per operation: ${consumed.cpu}`,
    });
    const mixed = await drainBacklog(service, { count: options.otherRows, make: mixedOperation, seeded: 0 });
    figures.push({
      name: `drain mixed (insert, 2 increments, update a row), ${size(options.otherRows)}`,
      value: mixed.rate,
      unit: 'ops/s',
      baseline: { name: 'inserts alone', value: insert.rate },
      target: 0.5,
      note: `CPU per operation: ${mixed.cpu}; ${mixed.chunks} chunks`,
    });
    if (options.scheduled > 0) {
      const crowded = await drainBacklog(service, {
        count: options.rows,
        make: (i) => operation('insert', i),
        seeded: 0,
        scheduled: options.scheduled,
      });
      figures.push({
        name: `drain insert with ${size(options.scheduled)} scheduled a day ahead`,
        value: crowded.rate,
        unit: 'ops/s',
        baseline: { name: 'without them', value: insert.rate },
        target: 0.8,
        note: `CPU per operation: ${crowded.cpu}`,
      });
    }
    return figures;
  } finally {
    await service.stop();
    await billing.end();
    await dropDatabase(billingName);
  }
}
