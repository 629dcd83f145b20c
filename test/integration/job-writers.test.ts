import assert from 'node:assert/strict';
import { Injectable, Module } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import {
  BatchJob,
  chunk,
  copyWriter,
  job,
  pagingReader,
  tableWriter,
  type ItemWriter,
  type JobDefinition,
  type WriteType,
} from '../../src/services/jobs';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { Jobs, startJobs } from '../support/jobs-app';

type Item = Record<string, unknown>;

/** Each item is a row of `changes` (its `item`, in `seq` order), written by the writer the `type` parameter names. */
function writeChanges(writer: ItemWriter<Item>) {
  return chunk<{ item: Item }, Item>({
    chunkSize: 4,
    reader: pagingReader({ table: 'changes', key: 'seq', columns: ['seq', 'item'] }),
    processor: ({ item }) => item,
    writer,
  });
}

@BatchJob()
@Injectable()
class TableWriterJob {
  readonly definition: JobDefinition;

  constructor(catalog: CatalogService) {
    const types: WriteType[] = ['insert', 'upsert', 'update', 'delete', 'increment'];
    const writers = new Map(types.map((type) => [type, tableWriter<Item>({ catalog, table: 'accounts', type })]));
    this.definition = job('table-writer')
      .describe('writes changes to accounts with a tableWriter')
      .parameter('type', { type: 'string', required: true, values: types, description: 'the write type' })
      .option('skipLimit', { type: 'integer', description: 'items skipped at most' })
      .step(
        'write',
        writeChanges((tx, items, step) => writers.get(step.job.parameters.type as WriteType)!(tx, items, step)),
      )
      .build();
  }
}

@BatchJob()
@Injectable()
class CopyWriterJob {
  readonly definition = job('copy-writer')
    .describe('copies changes into accounts')
    .option('skipLimit', { type: 'integer', description: 'items skipped at most' })
    .step('write', writeChanges(copyWriter({ table: 'public.accounts', columns: ['id', 'name', 'balance', 'tags'] })))
    .build();
}

/** Items with the values a processor gives in JavaScript: a Date, a bigint, a Buffer, an object, a nested array. */
@BatchJob()
@Injectable()
class KindsWriterJob {
  readonly definition: JobDefinition;

  constructor(catalog: CatalogService) {
    this.definition = job('kinds-writer')
      .describe('inserts values of many kinds')
      .option('skipLimit', { type: 'integer', description: 'items skipped at most' })
      .step(
        'write',
        chunk<{ item: Item }, Item>({
          chunkSize: 10,
          reader: pagingReader({ table: 'changes', key: 'seq', columns: ['seq', 'item'] }),
          processor: ({ item }) => ({
            id: item.id,
            at: new Date(item.at as string),
            big: BigInt(item.big as string),
            raw: Buffer.from(item.raw as string),
            doc: item.doc,
            grid: item.grid,
            ratio: Number(item.ratio),
          }),
          writer: tableWriter({ catalog, table: 'kinds', type: 'insert' }),
        }),
      )
      .build();
  }
}

@Module({ providers: [TableWriterJob, CopyWriterJob, KindsWriterJob] })
class WriterJobsModule {}

interface Account {
  id: number;
  name: string;
  balance: string;
  tags: string[] | null;
}

/** The ready writers: one statement (or one COPY) a chunk, items at fault skipped one by one. */
describe('job toolkit: the writers', () => {
  let jobs: Jobs;
  let run = 0;
  before(async () => {
    jobs = await startJobs({ targets: ['public.accounts', 'public.kinds'] }, [WriterJobsModule]);
    await jobs.db.query(`
      CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, balance numeric(12,2) NOT NULL DEFAULT 0,
                             tags text[], CHECK (balance >= 0));
      CREATE TABLE changes (seq serial PRIMARY KEY, item jsonb NOT NULL);
      CREATE TABLE kinds (id int PRIMARY KEY, at timestamptz, big numeric, raw bytea, doc jsonb, grid int[],
                          ratio float8);`);
  });
  after(() => jobs.close());

  /** Runs `name` over these changes: the step's counters, and the accounts after. */
  async function write(name: string, items: Item[], parameters: Item = {}, skipLimit = 0) {
    await jobs.db.query(`TRUNCATE changes RESTART IDENTITY`);
    await jobs.db.query(`INSERT INTO changes (item) SELECT * FROM jsonb_array_elements($1::jsonb)`, [
      JSON.stringify(items),
    ]);
    run += 1;
    const launched = await jobs.operator.launch(
      jobs.client,
      name,
      { ...parameters, runId: String(run) },
      { skipLimit },
    );
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    const accounts = await jobs.db.query<Account>(`SELECT id, name, balance::text, tags FROM accounts ORDER BY id`);
    return { done, step: done.steps[0], accounts };
  }

  const account = (id: number, name: string, balance: string, tags: string[] | null = null) => ({
    id,
    name,
    balance,
    tags,
  });

  it('insert: one statement a chunk (no rollback), values read by the columns’ types, arrays included', async () => {
    const items = [1, 2, 3, 4, 5, 6].map((id) => ({ id, name: `n${id}`, balance: id * 1.5, tags: ['a', `"${id}"`] }));
    const { done, step, accounts } = await write('table-writer', items, { type: 'insert' });
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual([step.writeCount, step.rollbackCount, step.commitCount], [6, 0, 2]);
    assert.deepEqual(accounts[5], account(6, 'n6', '9.00', ['a', '"6"']));
  });

  it('upsert and update: items of one chunk with one key apply as one after the other (the last wins)', async () => {
    const upserts = [
      { id: 1, name: 'first', balance: 1 },
      { id: 7, name: 'new', balance: 7 },
      { id: 1, name: 'second', balance: 2 },
    ];
    const upserted = await write('table-writer', upserts, { type: 'upsert' });
    assert.equal(upserted.step.rollbackCount, 0);
    assert.deepEqual(upserted.accounts[0], account(1, 'second', '2.00', ['a', '"1"']));
    assert.deepEqual(upserted.accounts.at(-1), account(7, 'new', '7.00'));
    const updated = await write(
      'table-writer',
      [
        { id: 2, name: 'x' },
        { id: 2, name: 'y' },
        { id: 99, name: 'z' },
      ],
      {
        type: 'update',
      },
    );
    assert.deepEqual(updated.accounts[1], account(2, 'y', '3.00', ['a', '"2"']));
    assert.equal(updated.accounts.length, 7);
  });

  it('increment adds every item of a key; delete deletes', async () => {
    const incremented = await write(
      'table-writer',
      [3, 3, 4, 3, 4].map((id) => ({ id, balance: 0.25 })),
      { type: 'increment' },
    );
    assert.deepEqual(
      incremented.accounts.filter((a) => a.id === 3 || a.id === 4).map((a) => a.balance),
      ['5.25', '6.50'],
    );
    const deleted = await write('table-writer', [{ id: 5 }, { id: 6 }, { id: 5 }], { type: 'delete' });
    assert.deepEqual(
      deleted.accounts.map((a) => a.id),
      [1, 2, 3, 4, 7],
    );
  });

  it('a statement refused: applied in parts down to the item at fault, skipped within skipLimit', async () => {
    const items = [10, 11, 12, 13, 14].map((id) => ({ id, name: `n${id}`, balance: id === 12 ? -1 : id }));
    const { done, step, accounts } = await write('table-writer', items, { type: 'insert' }, 1);
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual([step.writeCount, step.writeSkipCount, step.rollbackCount], [4, 1, 1]);
    assert.deepEqual(
      accounts.filter((a) => a.id >= 10).map((a) => a.id),
      [10, 11, 13, 14],
    );
  });

  it('items of other shapes on one row apply one after the other, in order (the queue’s planner)', async () => {
    await jobs.db.query(`TRUNCATE accounts`);
    const items = [
      { id: 20, name: 'first', balance: 1 },
      { id: 20, name: 'second', tags: ['x'] },
      { id: 21, name: 'other', tags: ['t'] },
      { id: 20, name: 'last', balance: 5 },
    ];
    const { done, step, accounts } = await write('table-writer', items, { type: 'upsert' });
    assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
    assert.deepEqual([step.writeCount, step.rollbackCount], [4, 0]);
    assert.deepEqual(accounts, [account(20, 'last', '5.00', ['x']), account(21, 'other', '0.00', ['t'])]);
  });

  it('an item the queue would refuse at creation is skipped with its code, the others written', async () => {
    await jobs.db.query(`TRUNCATE accounts`);
    const items = [
      { id: 30, name: 'ok', balance: 1 },
      { id: 31, name: 'bad', balance: 'a lot' },
      { id: 32, name: 'unknown', colour: 'red' },
      { id: 33, name: 'ok too' },
    ];
    const { done, step, accounts } = await write('table-writer', items, { type: 'insert' }, 2);
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual([step.writeCount, step.writeSkipCount, step.rollbackCount], [2, 2, 0]);
    assert.deepEqual(
      accounts.map((a) => a.id),
      [30, 33],
    );
    const rejects = await jobs.operator.rejects(jobs.client, done.id);
    assert.deepEqual(
      rejects.items.map((r) => r.code),
      ['VALIDATION_FAILED', 'UNKNOWN_COLUMN'],
    );
    assert.match(rejects.items[0].message, /Column "balance"/);
  });

  it('values as JavaScript gives them: a Date, a bigint exactly, a Buffer, an object, a nested array, NaN', async () => {
    const item = {
      id: 1,
      at: '2026-11-26T10:00:00.123Z',
      big: '123456789012345678901234567890',
      raw: 'bytes\\',
      doc: { a: [1, 'two', null], 'b"\\': { c: true } },
      grid: [
        [1, 2],
        [3, 4],
      ],
      ratio: 'NaN',
    };
    const { done } = await write('kinds-writer', [item]);
    assert.equal(done.status, 'COMPLETED');
    const rows = await jobs.db.query(
      `SELECT at = '2026-11-26T10:00:00.123Z' AS at, big::text, convert_from(raw, 'UTF8') AS raw, doc, grid, ratio::text FROM kinds`,
    );
    assert.deepEqual(rows, [{ at: true, big: item.big, raw: 'bytes\\', doc: item.doc, grid: item.grid, ratio: 'NaN' }]);
  });

  it('copyWriter: COPY of the items (quotes, commas, line ends, NULLs, empty, backslashes, arrays), one refused skipped', async () => {
    await jobs.db.query(`TRUNCATE accounts`);
    const items = [
      { id: 1, name: 'a "quoted", \n name', balance: '1.5', tags: ['x,y', 'q"', null] },
      { id: 2, name: '\\N', balance: 2, tags: null },
      { id: 3, name: 'bad', balance: -3 },
      { id: 4, name: 'plain', balance: 4, tags: [] },
      { id: 5, name: '', balance: 0.5 },
      { id: 6, name: '\\.', balance: '6' },
      { id: 7, name: ' \\ spaced \r', balance: 7 },
    ];
    const { done, step, accounts } = await write('copy-writer', items, {}, 1);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual([step.writeCount, step.writeSkipCount], [6, 1]);
    assert.deepEqual(accounts, [
      account(1, 'a "quoted", \n name', '1.50', ['x,y', 'q"', null as unknown as string]),
      account(2, '\\N', '2.00'),
      account(4, 'plain', '4.00', []),
      account(5, '', '0.50'),
      account(6, '\\.', '6.00'),
      account(7, ' \\ spaced \r', '7.00'),
    ]);
  });
});
