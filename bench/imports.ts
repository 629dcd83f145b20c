import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { importFile, type IJobExecution, type ImportParams } from '../src/client';
import { dbClientConfig } from '../test/support/shared-services';
import type { Figure } from './report';
import { BenchService } from './service';
import { TABLE } from './target';

const HEADER = 'id,qty,price,note,at\n';
/** Row i of the drain's table as a CSV record; `bad` makes its qty a text no integer column takes. */
const csvLine = (i: number, bad = false) =>
  `${i},${bad ? 'x' : i % 100},${(i % 1000) / 10},note ${i},2026-11-21T10:00:00Z\n`;
const ndjsonLine = (i: number) =>
  `{"id":${i},"qty":${i % 100},"price":${(i % 1000) / 10},"note":"note ${i}","at":"2026-11-21T10:00:00Z"}\n`;

function residentMegabytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/**
 * Imports: files of `rows` rows of the drain's table uploaded with the client package's importFile to the service
 * started with `npm start`, timed from the upload's start to COMPLETED (polled every 20 ms) and, for the load alone,
 * from the execution's start to its end (the database's clock); against `COPY … FROM STDIN` of the same file through
 * pg-copy-streams in one transaction, and for upserts a hand-written COPY into a temporary table plus INSERT … ON
 * CONFLICT in one transaction, in the same run. The service process's resident memory is sampled throughout.
 */
export async function benchImports(options: { rows: number }): Promise<Figure[]> {
  const service = new BenchService();
  const { db } = service;
  const dir = mkdtempSync(join(tmpdir(), 'bench-imports-'));
  const rows = options.rows;
  const write = (name: string, header: string, line: (i: number) => string) => {
    const path = join(dir, name);
    const lines: string[] = [header];
    for (let i = 1; i <= rows; i++) lines.push(line(i));
    writeFileSync(path, lines.join(''));
    return path;
  };
  try {
    await service.start(['all']);
    const pid = service.process('all').pid();
    const memory: number[] = [];
    const sampler = setInterval(() => memory.push(residentMegabytes(pid)), 250);
    const target = { url: service.process('api').url, apiKey: service.apiKey };
    const clean = write('clean.csv', HEADER, (i) => csvLine(i));
    const faulty = write('faulty.csv', HEADER, (i) => csvLine(i, i % 1000 === 500));
    const ndjson = write('rows.ndjson', '', ndjsonLine);
    for (const table of ['copied', 'imported', 'ndjson', 'faulty', 'upsert_base', 'upserted'])
      await db.query(`CREATE TABLE ${table} ${TABLE}`);
    for (const table of ['upsert_base', 'upserted']) {
      await db.query(`INSERT INTO ${table} SELECT g, 0, 0, 'old', now() FROM generate_series(1, ${rows}, 2) g`);
      await db.query(`VACUUM ANALYZE ${table}`);
    }

    const copy = await timed(() => copyFile(service.env.DB_NAME, clean, 'copied'));
    const upsertBaseline = await timed(() => upsertFile(service.env.DB_NAME, clean, 'upsert_base'));
    const load = async (file: string, params: ImportParams) => {
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
    clearInterval(sampler);

    const n = rows.toLocaleString('en');
    const copyRate = { name: 'COPY of the file, one transaction', value: rows / copy };
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
        value: rate(upserted.seconds),
        unit: 'rows/s',
        baseline: { name: 'COPY into a temporary table + INSERT … ON CONFLICT', value: rows / upsertBaseline },
        target: 0.7,
      },
      {
        name: `import ${n} rows of NDJSON (insert)`,
        value: rate(fromNdjson.seconds),
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
      { name: `memory peak RSS during the imports`, value: Math.max(...memory), unit: 'MB', target: 300, max: true },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await service.stop();
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
