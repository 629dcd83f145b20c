import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { ChunkStep } from '../src/services/chunk-step.service';
import { clientConfig } from '../src/services/database';
import { createTestApp, TestApp } from '../test/support/app-context';
import type { Figure } from './report';

/**
 * The writer: a backlog of pending operations on a 5-column target, applied by the real chunk step (claim,
 * statements, outcomes, execution, outbox, commit), against PostgreSQL COPY of the same rows into the same
 * table and against the same chunk step applying one operation per transaction.
 */
const TABLE = `CREATE TABLE public.bench (id int PRIMARY KEY, qty int NOT NULL, price numeric(12,2), note text, at timestamptz)`;
const TYPES = ['insert', 'upsert', 'update', 'increment', 'delete'] as const;
type Type = (typeof TYPES)[number];

/** The operations of one type over ids 1..n, as SQL that enqueues them straight into batch.operations. */
function enqueueSql(type: Type): string {
  const row = `jsonb_build_object('id', g, 'qty', g % 100, 'price', (g % 1000) / 10.0, 'note', 'note ' || g, 'at', '2026-11-21T10:00:00Z')`;
  const [values, key] = {
    insert: [row, 'NULL'],
    upsert: [row, 'NULL'],
    update: [`jsonb_build_object('qty', g % 7, 'note', 'updated ' || g)`, `jsonb_build_object('id', g)`],
    increment: [`jsonb_build_object('qty', 1)`, `jsonb_build_object('id', g)`],
    delete: ['NULL', `jsonb_build_object('id', g)`],
  }[type];
  return `INSERT INTO batch.operations (client_id, target, type, row_values, row_key, conflict_key)
          SELECT $1, 'public.bench', '${type}', ${values}, ${key}, ${type === 'upsert' ? `'{id}'::text[]` : 'NULL'}
            FROM generate_series($2::int, $3::int) g`;
}

async function prepare(t: TestApp, type: Type, rows: number): Promise<void> {
  await t.db.query(`DROP TABLE IF EXISTS public.bench; ${TABLE}`);
  await t.db.query(`TRUNCATE batch.operations, batch.outbox, batch.executions CASCADE`);
  if (type !== 'insert') {
    await t.db.query(`INSERT INTO public.bench SELECT g, 1, 1, 'seed', now() FROM generate_series(1, $1) g`, [rows]);
  }
  await t.db.query(`VACUUM ANALYZE public.bench`);
}

async function drain(t: TestApp): Promise<number> {
  const step = t.get(ChunkStep);
  const started = process.hrtime.bigint();
  while ((await step.execute()).read > 0);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export async function benchWriter(options: { rows: number; sample: number; chunk: number }): Promise<Figure[]> {
  const t = await createTestApp({
    BATCH_PROCESS_OPERATION_LIMIT: String(options.chunk),
    BATCH_STATEMENT_MAX_ROWS: String(options.chunk),
  });
  const figures: Figure[] = [];
  try {
    const client = await t.client('bench');
    await t.db.query(`DROP TABLE IF EXISTS public.bench; ${TABLE}`);
    await t.get(ChunkStep).execute(); // warm the catalog

    // COPY FROM STDIN of the same rows into the same table, over a connection of the same kind, timed from the
    // COPY statement to its completion: the database's own limit for bulk loading.
    const csv = Array.from(
      { length: options.rows },
      (_, i) => `${i + 1},${(i + 1) % 100},${((i + 1) % 1000) / 10},note ${i + 1},2026-11-21T10:00:00Z\n`,
    ).join('');
    await prepare(t, 'insert', options.rows);
    const copier = new Client(clientConfig(t.db.config.db));
    await copier.connect();
    const copyStarted = process.hrtime.bigint();
    await pipeline(
      Readable.from([Buffer.from(csv)]),
      copier.query(copyFrom(`COPY public.bench FROM STDIN WITH (FORMAT csv)`)),
    );
    const copyRate = options.rows / (Number(process.hrtime.bigint() - copyStarted) / 1e9);
    await copier.end();
    figures.push({ name: 'COPY (baseline)', value: copyRate, unit: 'rows/s' });

    for (const type of TYPES) {
      await prepare(t, type, options.rows);
      await t.db.query(enqueueSql(type), [client.id, 1, options.rows]);
      await t.db.query(`VACUUM ANALYZE batch.operations`);
      const batchRate = options.rows / (await drain(t));
      const completed = Number(
        (await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM batch.operations WHERE status = 'COMPLETED'`))[0].n,
      );
      if (completed !== options.rows) throw new Error(`${type}: ${completed} of ${options.rows} completed`);

      await prepare(t, type, options.rows);
      await t.db.query(enqueueSql(type), [client.id, 1, options.sample]);
      t.db.config.poll.limit = 1;
      const singleRate = options.sample / (await drain(t));
      t.db.config.poll.limit = options.chunk;

      figures.push({
        name: `writer ${type}`,
        value: batchRate,
        unit: 'ops/s',
        baseline: { name: 'COPY', value: copyRate },
        target: type === 'insert' ? 0.5 : undefined,
      });
      figures.push({
        name: `writer ${type} vs one at a time`,
        value: batchRate,
        unit: 'ops/s',
        baseline: { name: 'one op per transaction', value: singleRate },
        target: 25,
      });
    }
  } finally {
    await t.close();
  }
  return figures;
}
