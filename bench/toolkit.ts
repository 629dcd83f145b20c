import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Injectable, Module } from '@nestjs/common';
import {
  BatchJob,
  CatalogService,
  chunk,
  Database,
  copyWriter,
  job,
  pagingReader,
  tableWriter,
  type ItemWriter,
  type JobDefinition,
} from '../src/services/jobs';
import { startJobs, type Jobs } from '../test/support/jobs-app';
import type { Figure } from './report';
import { TABLE } from './target';

type Row = Record<string, unknown>;
const COLUMNS = ['id', 'qty', 'price', 'note', 'at'];

/** Where the call job's endpoint answers: set once the bench's server listens. */
let endpoint = '';

/**
 * source → `target`, paged by id (each next page read while a chunk is written), 10,000 rows a chunk, written by the
 * writer the `writer` parameter names.
 */
@BatchJob()
@Injectable()
class MoveJob {
  readonly definition: JobDefinition;

  constructor(catalog: CatalogService, db: Database) {
    const writers: Record<string, (target: string) => ItemWriter<Row>> = {
      table: (target) => tableWriter({ catalog, table: target, type: 'insert' }),
      copy: (target) => copyWriter({ table: target, columns: COLUMNS }),
    };
    this.definition = job('bench-move')
      .describe('moves the bench source into a table with a ready writer')
      .parameter('writer', {
        type: 'string',
        required: true,
        values: Object.keys(writers),
        description: 'table or copy',
      })
      .parameter('target', { type: 'string', required: true, description: 'the table written' })
      .step(
        'move',
        chunk<Row>({
          chunkSize: 10_000,
          reader: pagingReader({ table: 'source', columns: COLUMNS, key: 'id', readAhead: db }),
          writer: (tx, items, step) => {
            const { writer, target } = step.job.parameters as { writer: string; target: string };
            return writers[writer](target)(tx, items, step);
          },
        }),
      )
      .build();
  }
}

/** Each row of `calls` sent to the endpoint (which answers in 20 ms), `concurrency` at a time, the answers upserted. */
@BatchJob()
@Injectable()
class CallJob {
  readonly definition: JobDefinition;

  constructor(catalog: CatalogService) {
    const writer = tableWriter<Row>({ catalog, table: 'answers', type: 'upsert' });
    const call = async ({ id }: Row) => {
      const response = await fetch(`${endpoint}/${String(id)}`);
      return { id, answer: await response.text() };
    };
    const steps = [1, 16].map((concurrency) =>
      chunk<Row>({
        chunkSize: 160,
        reader: pagingReader({ table: 'calls', key: 'id' }),
        processor: call,
        concurrency,
        writer,
      }),
    );
    this.definition = job('bench-call')
      .describe('calls a slow endpoint per row')
      .parameter('concurrency', { type: 'integer', required: true, min: 1, max: 16, description: '1 or 16' })
      .step('call', {
        kind: 'tasklet',
        execute: (tx, step) => steps[step.job.parameters.concurrency === 16 ? 1 : 0].execute(tx, step),
      })
      .build();
  }
}

@Module({ providers: [MoveJob, CallJob] })
class BenchJobsModule {}

/** Launches `name` and runs it in this process, as a worker would: its seconds from launch to COMPLETED. */
async function run(jobs: Jobs, name: string, parameters: Row): Promise<number> {
  const started = performance.now();
  const launched = await jobs.operator.launch(jobs.client, name, parameters, {});
  await jobs.runAll();
  const done = await jobs.execution(launched.id);
  if (done.status !== 'COMPLETED') throw new Error(`${name}: ${done.status} ${JSON.stringify(done.exitStatus)}`);
  return (performance.now() - started) / 1000;
}

/**
 * The job author's toolkit, in process (the jobs run by this process as a worker would, on a database of their own):
 * `rows` rows moved table → table by the paging reader and the engine's table writer, and by the COPY writer, against
 * one `INSERT … SELECT` of the same rows in the same run; a processor calling an endpoint that answers in 20 ms, with
 * concurrency 16 against concurrency 1.
 */
export async function benchToolkit(options: { rows: number }): Promise<Figure[]> {
  const server: Server = createServer((request, response) => {
    setTimeout(() => response.end(`answer to ${request.url}`), 20);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const targets = ['by_insert', 'by_table', 'by_copy'];
  const jobs = await startJobs({ targets: targets.map((t) => `public.${t}`).concat('public.answers') }, [
    BenchJobsModule,
  ]);
  try {
    const { db } = jobs;
    await db.query(`CREATE TABLE source ${TABLE}`);
    for (const target of targets) await db.query(`CREATE TABLE ${target} ${TABLE}`);
    await db.query(`CREATE TABLE calls (id int PRIMARY KEY); CREATE TABLE answers (id int PRIMARY KEY, answer text)`);
    await db.query(
      `INSERT INTO source SELECT g, g % 100, (g % 1000) / 10.0, 'note ' || g, '2026-11-21T10:00:00Z'
         FROM generate_series(1, ${options.rows}) g`,
    );
    await db.query(`INSERT INTO calls SELECT generate_series(1, 320)`);
    await db.query(`VACUUM ANALYZE source`);

    const started = performance.now();
    await db.query(`INSERT INTO by_insert SELECT * FROM source`);
    const insertSelect = {
      name: 'INSERT … SELECT, one transaction',
      value: options.rows / ((performance.now() - started) / 1000),
    };
    const byTable = options.rows / (await run(jobs, 'bench-move', { writer: 'table', target: 'by_table' }));
    const byCopy = options.rows / (await run(jobs, 'bench-move', { writer: 'copy', target: 'by_copy' }));
    const one = 320 / (await run(jobs, 'bench-call', { concurrency: 1 }));
    await db.query(`TRUNCATE answers`);
    const sixteen = 320 / (await run(jobs, 'bench-call', { concurrency: 16 }));

    const rows = options.rows.toLocaleString('en');
    return [
      {
        name: `toolkit (in process): ${rows} rows, paging reader → tableWriter`,
        value: byTable,
        unit: 'rows/s',
        baseline: insertSelect,
        target: 0.5,
        note: 'chunks of 10,000, each staged and applied by the queue’s planner and statements',
      },
      {
        name: `toolkit (in process): ${rows} rows, paging reader → copyWriter`,
        value: byCopy,
        unit: 'rows/s',
        baseline: insertSelect,
        target: 0.6,
      },
      {
        name: 'toolkit (in process): processor concurrency 16, endpoint answering in 20 ms',
        value: sixteen,
        unit: 'items/s',
        baseline: { name: 'concurrency 1', value: one },
        target: 10,
        note: '320 items, chunks of 160',
      },
    ];
  } finally {
    await jobs.close();
    server.close();
  }
}
