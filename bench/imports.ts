import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { importFile, type IJobExecution, type ImportParams } from '../src/client';
import { dbClientConfig } from '../test/support/shared-services';
import type { Figure } from './report';
import { bullmqRate } from './bullmq';
import { checkpoint, fill } from './drain';
import { BenchService, residentMegabytes } from './service';
import { operation, TABLE } from './target';

const HEADER = 'id,qty,price,note,at\n';
/** Row i of the drain's table as a CSV record; `bad` makes its qty a text no integer column takes. */
const csvLine = (i: number, bad = false) =>
  `${i},${bad ? 'x' : i % 100},${(i % 1000) / 10},note ${i},2026-11-21T10:00:00Z\n`;
const ndjsonLine = (i: number) =>
  `{"id":${i},"qty":${i % 100},"price":${(i % 1000) / 10},"note":"note ${i}","at":"2026-11-21T10:00:00Z"}\n`;
/**
 * Five kinds of bad row, each refused with its own code: a qty that is no integer (22P02), a price past numeric(12,2)
 * (22003), a field missing (22P04), no qty for the NOT NULL column (23502), the id of the row before (23505).
 */
const FAULTS = [
  (i: number) => `${i},x,1.5,note ${i},2026-11-21T10:00:00Z\n`,
  (i: number) => `${i},1,1e15,note ${i},2026-11-21T10:00:00Z\n`,
  (i: number) => `${i},1,1.5,note ${i}\n`,
  (i: number) => `${i},,1.5,note ${i},2026-11-21T10:00:00Z\n`,
  (i: number) => `${i - 1},1,1.5,note ${i},2026-11-21T10:00:00Z\n`,
];
/** Row i, or one in a hundred of the five kinds of bad row in turn. */
const fiveKindsLine = (i: number) => (i % 100 === 50 ? FAULTS[Math.floor(i / 100) % FAULTS.length](i) : csvLine(i));

/** A file of a header and rows 1..`rows`, written as it is made (the largest is 600 MB). */
async function writeRows(path: string, header: string, rows: number, line: (i: number) => string): Promise<string> {
  const out = createWriteStream(path);
  out.write(header);
  for (let first = 1; first <= rows; first += 10_000) {
    const lines: string[] = [];
    for (let i = first; i < Math.min(rows + 1, first + 10_000); i++) lines.push(line(i));
    if (!out.write(lines.join(''))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return path;
}

/**
 * Imports: files of `rows` rows of the drain's table uploaded with the client package's importFile to the service
 * started with `npm start`, timed from the upload's start to COMPLETED (polled every 20 ms) and, for the load alone,
 * from the execution's start to its end (the database's clock); against `COPY … FROM STDIN` of the same file through
 * pg-copy-streams in one transaction, and for upserts a hand-written COPY into a temporary table plus INSERT … ON
 * CONFLICT in one transaction, in the same run; and against what the seeds' stack offers for the same rows: BullMQ jobs
 * through a NestJS worker (`bullmqRows` of them, bullmq.ts), and createOperations messages of 1,000 through this
 * service (from the first message to the last row's notification). The service process's resident memory is sampled
 * throughout, and apart while it imports a file of `memoryRows` rows (none: not run).
 */
export async function benchImports(options: {
  rows: number;
  bullmqRows: number;
  memoryRows: number;
}): Promise<Figure[]> {
  const service = new BenchService();
  const { db } = service;
  const dir = mkdtempSync(join(tmpdir(), 'bench-imports-'));
  const rows = options.rows;
  const write = (name: string, header: string, line: (i: number) => string) =>
    writeRows(join(dir, name), header, rows, line);
  try {
    await service.start(['all']);
    const pid = service.process('all').pid();
    let memory: number[] = [];
    const sampler = setInterval(() => memory.push(residentMegabytes(pid)), 250);
    const target = { url: service.process('api').url, apiKey: service.apiKey };
    const clean = await write('clean.csv', HEADER, (i) => csvLine(i));
    const faulty = await write('faulty.csv', HEADER, (i) => csvLine(i, i % 1000 === 500));
    const fiveKinds = await write('five-kinds.csv', HEADER, fiveKindsLine);
    const ndjson = await write('rows.ndjson', '', ndjsonLine);
    for (const table of ['copied', 'imported', 'ndjson', 'faulty', 'five_kinds', 'queued', 'upsert_base', 'upserted'])
      await db.query(`CREATE TABLE ${table} ${TABLE}`);
    for (const table of ['upsert_base', 'upserted']) {
      await db.query(`INSERT INTO ${table} SELECT g, 0, 0, 'old', now() FROM generate_series(1, ${rows}, 2) g`);
      await db.query(`VACUUM ANALYZE ${table}`);
    }

    await checkpoint(db);
    const copy = await timed(() => copyFile(service.env.DB_NAME, clean, 'copied'));
    await checkpoint(db);
    const upsertBaseline = await timed(() => upsertFile(service.env.DB_NAME, clean, 'upsert_base'));
    const load = async (file: string, params: ImportParams) => {
      await checkpoint(db);
      const started = performance.now();
      const launched = await importFile(target, file, params);
      const done = await until(service, launched.id);
      if (done.status !== 'COMPLETED')
        throw new Error(`import into ${params.target}: ${JSON.stringify(done.exitStatus)}`);
      const loadSeconds = (Date.parse(done.endedAt!) - Date.parse(done.startedAt!)) / 1000;
      return { seconds: (performance.now() - started) / 1000, loadSeconds, execution: done };
    };
    const inserted = await load(clean, { target: 'imported' });
    const upserted = await load(clean, { target: 'upserted', mode: 'upsert' });
    const fromNdjson = await load(ndjson, { target: 'ndjson' });
    const withBad = await load(faulty, { target: 'faulty', skipLimit: rows });
    const withFiveKinds = await load(fiveKinds, { target: 'five_kinds', skipLimit: rows });
    clearInterval(sampler);
    const codes = await rejectCodes(service, withFiveKinds.execution.id);
    const queued = await timed(() => viaQueue(service, rows));
    const bullmq = await bullmqRate(service.env.DB_NAME, options.bullmqRows);
    const figures = importFigures({ rows, copy, upsertBaseline, inserted, upserted, fromNdjson, withBad, memory });
    const fiveKindRows = Math.floor((rows + 50) / 100);
    figures.push(
      {
        name: 'import with 1 % bad rows of five kinds: rejects reported',
        value: [...codes.values()].reduce((sum, n) => sum + n, 0),
        unit: 'rejects',
        baseline: { name: 'bad rows in the file', value: fiveKindRows },
        target: 1,
        note: `${[...codes].map(([code, n]) => `${code} ×${n}`).join(', ')}; ${Math.round(rows / withFiveKinds.seconds).toLocaleString('en')} rows/s`,
      },
      {
        name: 'import (insert) vs createOperations through the service',
        value: rows / inserted.seconds,
        unit: 'rows/s',
        baseline: { name: 'createOperations of 1,000, first sent → last notified', value: rows / queued },
        target: 1,
      },
      {
        name: 'import (insert) vs BullMQ + NestJS worker',
        value: rows / inserted.seconds,
        unit: 'rows/s',
        baseline: { name: `BullMQ, a job per row (${options.bullmqRows.toLocaleString('en')})`, value: bullmq.rate },
        target: 1,
      },
    );
    if (options.memoryRows > 0) {
      const large = await writeRows(join(dir, 'large.csv'), HEADER, options.memoryRows, (i) => csvLine(i));
      await db.query(`CREATE TABLE large ${TABLE}`);
      const before = residentMegabytes(pid);
      memory = [];
      const sampling = setInterval(() => memory.push(residentMegabytes(pid)), 250);
      const imported = await load(large, { target: 'large' }).finally(() => clearInterval(sampling));
      rmSync(large);
      figures.push({
        name: `memory peak RSS, a ${options.memoryRows.toLocaleString('en')}-row import`,
        value: Math.max(...memory),
        unit: 'MB',
        target: 300,
        max: true,
        // What the process held before (the sections before it leave their heaps' reserves) tells the import's own share.
        note: `${Math.round(options.memoryRows / imported.seconds).toLocaleString('en')} rows/s upload → COMPLETED; ${Math.round(before)} MB before the import`,
      });
    }
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await service.stop();
  }
}

interface Loaded {
  seconds: number;
  loadSeconds: number;
  execution: IJobExecution;
}

/** The figures of the imports against their baselines. */
function importFigures(run: {
  rows: number;
  copy: number;
  upsertBaseline: number;
  inserted: Loaded;
  upserted: Loaded;
  fromNdjson: Loaded;
  withBad: Loaded;
  memory: number[];
}): Figure[] {
  const { rows, inserted, withBad } = run;
  const n = rows.toLocaleString('en');
  const copyRate = { name: 'COPY of the file, one transaction', value: rows / run.copy };
  const rate = (seconds: number) => rows / seconds;
  return [
    {
      name: `import ${n} rows (insert), upload → COMPLETED`,
      value: rate(inserted.seconds),
      unit: 'rows/s',
      baseline: copyRate,
      target: 0.6,
    },
    { name: `  the load alone`, value: rate(inserted.loadSeconds), unit: 'rows/s', baseline: copyRate, target: 0.85 },
    {
      name: `import ${n} rows (upsert, half existing)`,
      value: rate(run.upserted.seconds),
      unit: 'rows/s',
      baseline: { name: 'COPY into a temporary table + INSERT … ON CONFLICT', value: rows / run.upsertBaseline },
      target: 0.7,
    },
    {
      name: `import ${n} rows of NDJSON (insert)`,
      value: rate(run.fromNdjson.seconds),
      unit: 'rows/s',
      baseline: copyRate,
      target: 0.4,
    },
    {
      name: `import with 0.1 % bad rows`,
      value: rate(withBad.seconds),
      unit: 'rows/s',
      baseline: { name: 'the clean file', value: rate(inserted.seconds) },
      target: 0.5,
      note: `${withBad.execution.steps[0].writeSkipCount} rejects reported of ${Math.floor((rows + 500) / 1000)}`,
    },
    { name: `memory peak RSS during the imports`, value: Math.max(...run.memory), unit: 'MB', target: 300, max: true },
  ];
}

/** The rejects of an execution, counted by code (every page of them). */
async function rejectCodes(service: BenchService, id: string): Promise<Map<string, number>> {
  const codes = new Map<string, number>();
  for (let cursor: string | null = null; ;) {
    const query: string = `limit=1000${cursor ? `&cursor=${cursor}` : ''}`;
    const response = await fetch(`${service.process('api').url}/api/jobs/executions/${id}/rejects?${query}`, {
      headers: { 'x-api-key': service.apiKey },
    });
    const page = (await response.json()) as { items: { code: string }[]; nextCursor: string | null };
    for (const { code } of page.items) codes.set(code, (codes.get(code) ?? 0) + 1);
    if (!page.nextCursor) return codes;
    cursor = page.nextCursor;
  }
}

/** The same rows as createOperations messages of 1,000 (four in flight) into `queued`, until the last is notified. */
async function viaQueue(service: BenchService, rows: number): Promise<void> {
  const rpc = service.rpc();
  const notified = await service.notifications();
  try {
    await fill(rpc, rows, (i) => ({ ...operation('insert', i), target: 'queued' }));
    await notified.settled(rows);
  } finally {
    await notified.stop();
    await rpc.close();
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

async function until(service: BenchService, id: string): Promise<IJobExecution> {
  for (;;) {
    const response = await fetch(`${service.process('api').url}/api/jobs/executions/${id}`, {
      headers: { 'x-api-key': service.apiKey },
    });
    const execution = (await response.json()) as IJobExecution;
    if (['COMPLETED', 'FAILED', 'STOPPED'].includes(execution.status)) return execution;
    await sleep(20);
  }
}

/** The file through COPY into `table`, in one transaction. */
async function copyFile(database: string, file: string, table: string): Promise<void> {
  const client = new Client(dbClientConfig(database));
  await client.connect();
  try {
    await client.query('BEGIN');
    await pipeline(
      createReadStream(file),
      client.query(copyFrom(`COPY ${table} FROM STDIN WITH (FORMAT csv, HEADER)`)),
    );
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

/** What a hand-written upsert of the file does: COPY into a temporary table, then one INSERT … ON CONFLICT. */
async function upsertFile(database: string, file: string, table: string): Promise<void> {
  const client = new Client(dbClientConfig(database));
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(`CREATE TEMP TABLE incoming ON COMMIT DROP AS SELECT * FROM ${table} WITH NO DATA`);
    await pipeline(
      createReadStream(file),
      client.query(copyFrom(`COPY incoming FROM STDIN WITH (FORMAT csv, HEADER)`)),
    );
    await client.query(
      `INSERT INTO ${table} SELECT * FROM incoming ON CONFLICT (id) DO UPDATE
         SET qty = EXCLUDED.qty, price = EXCLUDED.price, note = EXCLUDED.note, at = EXCLUDED.at`,
    );
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}
