import fc from 'fast-check';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { from as copyFrom } from 'pg-copy-streams';
import type { PoolClient } from 'pg';
import { ImportUploads } from '../../src/services/imports/import-uploads.service';
import { Database } from '../../src/services/storage/database';
import { Jobs, startJobs } from '../support/jobs-app';

/**
 * The proof of an import's meaning (docs/api.md#imports): random CSV files (quoted fields with delimiters, quotes and newlines,
 * NULL markers, Unicode, CRLF, bad records of several kinds mixed in) imported in random chunk sizes, as inserts or
 * upserts, leave the same table and the same rejects (line and SQLSTATE) as applying the records one at a time in
 * file order, each alone through its own COPY (and, for an upsert, INSERT … ON CONFLICT) under a savepoint.
 *
 * `PROPERTY_RUNS=500 npm run test:property` runs it longer.
 */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 60);
const SEED = Number(process.env.PROPERTY_SEED ?? 20261124);

const TABLE = `(id int PRIMARY KEY, qty int CHECK (qty >= 0), note varchar(6), at date)`;
const COLUMNS = ['id', 'qty', 'note', 'at'];

const quoted = (text: string) => `"${text.replace(/"/g, '""')}"`;
// mostly values that load, so that records of one key meet; each kind of bad value now and then
const id = fc.integer({ min: 1, max: 8 }).map(String);
const qty = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 9 }).map(String) },
  { weight: 1, arbitrary: fc.constantFrom('', '-1', 'x', '99999999999', '"7"') },
);
const note = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .string({ unit: fc.constantFrom('a', ',', '\n', '"', 'é', '😀', ' ', '\r\n'), maxLength: 3 })
      .map(quoted),
  },
  { weight: 3, arbitrary: fc.constantFrom('', 'plain', 'NULL') },
  { weight: 1, arbitrary: fc.constant('toolong!') },
);
const at = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('', '2026-01-31', '2026-03-01') },
  { weight: 1, arbitrary: fc.constantFrom('2026-02-30', 'soon') },
);
const record = fc.oneof(
  { weight: 20, arbitrary: fc.tuple(id, qty, note, at).map((fields) => fields.join(',')) },
  { weight: 1, arbitrary: fc.tuple(id, qty).map((fields) => fields.join(',')) }, // a field missing
  { weight: 1, arbitrary: fc.tuple(id, qty, note, at, id).map((fields) => fields.join(',')) }, // one too many
);
const file = fc.record({
  records: fc.array(record, { minLength: 1, maxLength: 25 }),
  crlf: fc.boolean(),
  nullMarker: fc.constantFrom(null, 'NULL'),
  mode: fc.constantFrom('insert', 'upsert'),
  chunkSize: fc.integer({ min: 1, max: 30 }),
});

describe('imports are sequentially equivalent (property, real PostgreSQL)', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.imported'] });
    await jobs.db.query(`CREATE TABLE imported ${TABLE}; CREATE TABLE expected ${TABLE}`);
  });
  after(() => jobs.close());

  it('leaves the table and the rejects of one record at a time, in file order', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(file, async ({ records, crlf, nullMarker, mode, chunkSize }) => {
        const newline = crlf ? '\r\n' : '\n';
        const text = [COLUMNS.join(','), ...records].join(newline) + newline;
        await jobs.db.query(`TRUNCATE imported, expected`);
        await jobs.db.query(
          `INSERT INTO imported VALUES (1, 1, 'seed', NULL); INSERT INTO expected VALUES (1, 1, 'seed', NULL)`,
        );
        const query: Record<string, string> = {
          target: 'imported',
          mode,
          chunkSize: String(chunkSize),
          skipLimit: '1000',
        };
        if (nullMarker) query.null = nullMarker;
        query.runId = String(run++);
        const launched = await jobs.app
          .get(ImportUploads)
          .upload(jobs.client, { query, contentType: 'text/csv', contentEncoding: undefined }, Readable.from([text]));
        await jobs.runAll();
        const done = await jobs.execution(launched.id);
        assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
        const rejects = (await jobs.operator.rejects(jobs.client, launched.id, 1000)).items.map((r) => [
          r.line,
          r.code,
        ]);

        const expectedRejects = await oneAtATime(jobs.app.get(Database), records, newline, nullMarker, mode);
        const table = (name: string) => jobs.db.query(`SELECT id, qty, note, at::text FROM ${name} ORDER BY id`);
        assert.deepEqual(await table('imported'), await table('expected'), text);
        assert.deepEqual(rejects, expectedRejects, text);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});

/** Each record alone into `expected` (a COPY under a savepoint, through a temporary table for an upsert): the rejects. */
async function oneAtATime(
  db: Database,
  records: string[],
  newline: string,
  nullMarker: string | null,
  mode: string,
): Promise<[number, string][]> {
  const options = `FORMAT csv${nullMarker ? `, NULL '${nullMarker}'` : ''}`;
  const rejects: [number, string][] = [];
  await db.transaction(async (tx) => {
    let line = 2;
    for (const record of records) {
      await tx.query('SAVEPOINT one');
      try {
        if (mode === 'insert')
          await copy(tx, `COPY expected (${COLUMNS}) FROM STDIN WITH (${options})`, record, newline);
        else {
          await tx.query(`CREATE TEMP TABLE one ON COMMIT DROP AS SELECT ${COLUMNS} FROM expected WITH NO DATA`);
          await copy(tx, `COPY one (${COLUMNS}) FROM STDIN WITH (${options})`, record, newline);
          await tx.query(
            `INSERT INTO expected SELECT * FROM one ON CONFLICT (id) DO UPDATE
               SET qty = EXCLUDED.qty, note = EXCLUDED.note, at = EXCLUDED.at`,
          );
          await tx.query('DROP TABLE one');
        }
        await tx.query('RELEASE SAVEPOINT one');
      } catch (error) {
        await tx.query('ROLLBACK TO SAVEPOINT one; RELEASE SAVEPOINT one');
        rejects.push([line, (error as { code: string }).code]);
      }
      line += record.split('\n').length - 1 + 1;
    }
  });
  return rejects;
}

function copy(tx: PoolClient, statement: string, record: string, newline: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = tx.query(copyFrom(statement));
    stream.on('error', reject);
    stream.on('finish', resolve);
    stream.end(record + newline);
  });
}
