import assert from 'node:assert/strict';
import { Injectable, Module } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import type { QueryArrayConfig } from 'pg';
import {
  BatchJob,
  chunk,
  cursorReader,
  job,
  pagingReader,
  type ItemReader,
  type JobDefinition,
} from '../../src/services/jobs';
import { Database } from '../../src/services/storage/database';
import { Jobs, startJobs } from '../support/jobs-app';
import { signal } from '../support/signal';

interface Row {
  id: number;
  grp: string;
  n: number;
}

/** The item at which the writer fails (once: the test clears it), failing its chunk and so the step. */
let failAt: number | null = null;

/** Copies items into `copied`, one row each (its primary key refuses an item written twice). */
async function copied(tx: import('pg').PoolClient, rows: Row[]): Promise<void> {
  if (rows.some((row) => row.n === failAt)) throw new Error('failing on purpose');
  await tx.query(`INSERT INTO copied SELECT * FROM unnest($1::int[], $2::text[])`, [
    rows.map((row) => row.n),
    rows.map((row) => row.grp),
  ]);
}

function copyStep(reader: ItemReader<Row>) {
  return chunk<Row>({ chunkSize: 7, reader, writer: copied });
}

@BatchJob()
@Injectable()
class PagingTableJob {
  readonly definition = job('paging-table')
    .describe('pages a table by its key')
    .parameter('skipEvery', { type: 'integer', required: true, description: 'leaves out multiples of this' })
    .step(
      'copy',
      copyStep(
        pagingReader<Row>({
          table: 'public.items',
          columns: ['n', 'grp'], // the key's column is read too
          key: 'id',
          where: 'n % $1 <> 0',
          params: (step) => [step.job.parameters.skipEvery],
        }),
      ),
    )
    .build();
}

@BatchJob()
@Injectable()
class PagingQueryJob {
  readonly definition = job('paging-query')
    .describe('pages a query by a key of two columns')
    .step('copy', copyStep(pagingReader<Row>({ query: 'SELECT grp, n, id FROM items', key: ['grp', 'n'] })))
    .build();
}

@BatchJob()
@Injectable()
class CursorJob {
  readonly definition: JobDefinition;

  constructor(db: Database) {
    const reader = cursorReader<Row>({ db, query: 'SELECT * FROM items ORDER BY grp, n', idleMs: 100 });
    this.definition = job('cursor').describe('streams a query in a cursor').step('copy', copyStep(reader)).build();
  }
}

/** Where the read-ahead job's writer fails once, with an error its retry names. */
let flakyAt: number | null = null;
class Flaky extends Error {}

@BatchJob()
@Injectable()
class ReadAheadJob {
  readonly definition: JobDefinition;

  constructor(db: Database) {
    // the pool's queries observed: the first chunk commits only once the page after it has been read
    const firstPageAhead = signal();
    const pool = { query: (page: QueryArrayConfig) => db.pool.query(page).finally(() => firstPageAhead.resolve()) };
    const step = chunk<Row>({
      chunkSize: 7,
      reader: pagingReader<Row>({ table: 'ahead', key: 'id', readAhead: { pool } as unknown as Database }),
      writer: async (tx, rows) => {
        // changes rows after the page, which the page read ahead (before this commits) does not see
        if (rows[0].id === 1) {
          await tx.query(`UPDATE ahead SET grp = 'z' WHERE id > 7`);
          await firstPageAhead.promise;
        }
        if (rows.some((row) => row.n === flakyAt)) {
          flakyAt = null;
          throw new Flaky('once');
        }
        await copied(tx, rows);
      },
      retry: { on: [Flaky], limit: 2, backoff: { initialMs: 1 } },
    });
    this.definition = job('read-ahead').describe('pages a table reading ahead').step('copy', step).build();
  }
}

@Module({ providers: [PagingTableJob, PagingQueryJob, CursorJob, ReadAheadJob] })
class ReaderJobsModule {}

/** The ready readers: each goes on after its last committed chunk when a chunk fails and the execution restarts. */
describe('job toolkit: the readers, restarted mid-way', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.copied'] }, [ReaderJobsModule]);
    // ids out of the order of (grp, n), so that each reader's own order is the one checked
    await jobs.db.query(`
      CREATE TABLE items (id int PRIMARY KEY, grp text NOT NULL, n int NOT NULL, UNIQUE (grp, n));
      INSERT INTO items SELECT g, chr(97 + g % 3), g FROM generate_series(1, 50) g;
      CREATE TABLE copied (n int PRIMARY KEY, grp text NOT NULL, at serial);`);
  });
  after(() => jobs.close());

  /** Runs the job with the writer failing at `n`, then restarts it: what was copied, in the order copied. */
  async function failThenRestart(name: string, n: number, parameters: Record<string, unknown> = {}) {
    await jobs.db.query(`TRUNCATE copied RESTART IDENTITY`);
    failAt = n;
    const first = await jobs.operator.launch(jobs.client, name, { ...parameters, runId: name }, {});
    await jobs.runAll();
    const failed = await jobs.execution(first.id);
    assert.equal(failed.status, 'FAILED');
    const before = await jobs.db.query<{ n: number }>(`SELECT n FROM copied ORDER BY at`);
    failAt = null;
    const second = await jobs.operator.restart(jobs.client, first.id);
    await jobs.runAll();
    const done = await jobs.execution(second.id);
    assert.equal(done.status, 'COMPLETED');
    const rows = await jobs.db.query<{ n: number; grp: string }>(`SELECT n, grp FROM copied ORDER BY at`);
    return { before: before.map((r) => r.n), after: rows.map((r) => r.n), step: done.steps[0] };
  }

  it('pagingReader over a table: pages by the key, the condition bound, on from the last key after a restart', async () => {
    const { before, after, step } = await failThenRestart('paging-table', 31, { skipEvery: 5 });
    const expected = Array.from({ length: 50 }, (_, i) => i + 1).filter((n) => n % 5 !== 0);
    assert.deepEqual(before, expected.slice(0, 21)); // three chunks of 7 committed, the fourth (with 31) failed
    assert.deepEqual(after, expected);
    assert.equal(step.readCount, expected.length - 21);
  });

  it('pagingReader over a query with a key of two columns, one of them text', async () => {
    const { after } = await failThenRestart('paging-query', 40);
    const order = (n: number) => `${String.fromCharCode(97 + (n % 3))}${String(n).padStart(3, '0')}`;
    const expected = Array.from({ length: 50 }, (_, i) => i + 1).sort((a, b) => order(a).localeCompare(order(b)));
    assert.deepEqual(after, expected);
  });

  it('pagingReader reading ahead: the next page read before the chunk commits, read again after a retry', async () => {
    await jobs.db.query(`TRUNCATE copied RESTART IDENTITY; DROP TABLE IF EXISTS ahead;
      CREATE TABLE ahead AS SELECT * FROM items; ALTER TABLE ahead ADD PRIMARY KEY (id)`);
    flakyAt = 24; // the fourth chunk, 22–28, fails once and is run again from its key
    const launched = await jobs.operator.launch(jobs.client, 'read-ahead', {}, {});
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(flakyAt, null);
    const rows = await jobs.db.query<{ n: number; grp: string }>(`SELECT n, grp FROM copied ORDER BY at`);
    assert.deepEqual(
      rows.map((row) => row.n),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    // the second chunk's page was read ahead, before the first chunk's update committed; the third's after it
    const grp = (n: number) => rows[n - 1].grp;
    assert.deepEqual([grp(7), grp(8), grp(14), grp(15), grp(50)], ['b', 'c', 'c', 'z', 'z']);
  });

  it('cursorReader: streams the query; a restart runs it again and skips the rows committed', async () => {
    const { before, after, step } = await failThenRestart('cursor', 40);
    const order = (n: number) => `${String.fromCharCode(97 + (n % 3))}${String(n).padStart(3, '0')}`;
    const expected = Array.from({ length: 50 }, (_, i) => i + 1).sort((a, b) => order(a).localeCompare(order(b)));
    assert.deepEqual(after, expected);
    assert.equal(step.readCount, expected.length - before.length);
    assert.equal(before.length % 7, 0);
  });
});
