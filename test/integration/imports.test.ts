import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { IJobExecution, IJobReject } from '../../src/interfaces/job.interfaces';
import { BatchError } from '../../src/services/batch-error';
import { ImportUploads, UploadRequest } from '../../src/services/imports/import-uploads.service';
import { RetentionService } from '../../src/services/storage/retention.service';
import { Jobs, startJobs } from '../support/jobs-app';

const TABLE = `(id int PRIMARY KEY, qty int CHECK (qty >= 0), note text)`;

/** An upload of `body` (in pieces of `piece` bytes, as a socket delivers it) with the query given. */
function upload(
  jobs: Jobs,
  query: Record<string, string>,
  body: string | Buffer,
  headers: Partial<UploadRequest> = {},
) {
  const data = typeof body === 'string' ? Buffer.from(body) : body;
  const pieces = Array.from({ length: Math.ceil(data.length / 7) }, (_, i) => data.subarray(i * 7, i * 7 + 7));
  return jobs.app
    .get(ImportUploads)
    .upload(
      jobs.client,
      { query, contentType: 'text/csv', contentEncoding: undefined, ...headers },
      Readable.from(pieces),
    );
}

async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = await promise.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof BatchError, String(error));
  return { code: error.code, message: error.message };
}

describe('imports on PostgreSQL: upload, load, rejects, restart', () => {
  let jobs: Jobs;
  const rows = (table = 'items') => jobs.db.query(`SELECT * FROM ${table} ORDER BY id`);
  const rejects = async (id: string) =>
    (await jobs.operator.rejects(jobs.client, id, 1000)).items.map((r: IJobReject) => [r.line, r.code, r.column]);
  const stored = async () =>
    Number((await jobs.db.query<{ n: string }>(`SELECT count(*) AS n FROM batch.import_files`))[0].n);
  const run = async (launched: IJobExecution) => {
    await jobs.runAll();
    return jobs.execution(launched.id);
  };

  before(async () => {
    jobs = await startJobs({ targets: ['public.items', 'public.others', 'public.children', 'public.headless'] }, [], {
      BATCH_IMPORT_MAX_BYTES: '100000',
    });
    await jobs.db.query(`CREATE TABLE items ${TABLE}; CREATE TABLE others ${TABLE}; CREATE TABLE headless ${TABLE}`);
  });
  after(() => jobs.close());

  it('loads a CSV file: quoted newlines, doubled quotes, CRLF, a BOM; every bad record a reject with its line', async () => {
    const csv =
      '\ufeffid,qty,note\r\n1,5,"two\r\nlines"\r\n2,x,bad qty\r\n3,-1,check\r\n4,4,"say ""hi"""\r\n4,5,twice\r\n5,,\r\n6,1,"é ü 😀"\r\n7,1\r\n8,1,a,b';
    const launched = await upload(jobs, { target: 'items', skipLimit: '10', chunkSize: '3' }, csv);
    assert.equal(launched.status, 'STARTING');
    assert.equal(launched.parameters.format, 'csv');
    const done = await run(launched);
    assert.deepEqual([done.status, done.exitStatus?.code], ['COMPLETED', 'COMPLETED_WITH_SKIPS']);
    assert.deepEqual(
      [done.steps[0].readCount, done.steps[0].writeCount, done.steps[0].writeSkipCount, done.steps[0].commitCount],
      [9, 4, 5, 3],
    );
    assert.deepEqual(done.progress && [done.progress.unit, done.progress.done === done.progress.total], [
      'bytes',
      true,
    ]);
    assert.deepEqual(await rows(), [
      { id: 1, qty: 5, note: 'two\r\nlines' },
      { id: 4, qty: 4, note: 'say "hi"' },
      { id: 5, qty: null, note: null },
      { id: 6, qty: 1, note: 'é ü 😀' },
    ]);
    assert.deepEqual(await rejects(launched.id), [
      [4, '22P02', 'qty'],
      [5, '23514', null],
      [7, '23505', null],
      [10, '22P04', 'note'],
      [11, '22P04', null],
    ]);
    const [first] = (await jobs.operator.rejects(jobs.client, launched.id)).items;
    assert.deepEqual(first, {
      line: 4,
      byteOffset: 34,
      column: 'qty',
      code: '22P02',
      message: 'invalid input syntax for type integer: "x"',
      record: '2,x,bad qty',
    });
  });

  it('rejects what one record at a time would: a record refused for another one that is itself refused loads', async () => {
    await jobs.db.query(`CREATE TABLE parents (id int PRIMARY KEY); INSERT INTO parents VALUES (1);
      CREATE TABLE children (id int PRIMARY KEY, parent int REFERENCES parents)`);
    // COPY meets the second 7 as a duplicate (line 4) before it checks the first one's parent (at its end): the
    // second 7 goes in once the first is refused
    const csv = 'id,parent\n1,1\n7,2\n7,1\n3,1\n';
    const launched = await upload(jobs, { target: 'children', skipLimit: '10' }, csv);
    const done = await run(launched);
    assert.deepEqual([done.status, done.steps[0].writeCount, done.steps[0].writeSkipCount], ['COMPLETED', 3, 1]);
    assert.deepEqual(await rows('children'), [
      { id: 1, parent: 1 },
      { id: 3, parent: 1 },
      { id: 7, parent: 1 },
    ]);
    assert.deepEqual(await rejects(launched.id), [[3, '23503', null]]);
  });

  it('runs an instance once: the same data again is refused, with a runId loaded again from the stored file', async () => {
    const csv = 'id,qty,note\n100,1,a\n';
    const first = await upload(jobs, { target: 'items' }, csv);
    await run(first);
    const before = await stored();
    const again = await refusal(upload(jobs, { target: 'items' }, csv));
    assert.equal(again.code, 'CONFLICT');
    assert.equal(await stored(), before, 'nothing more stored');
    const rerun = await upload(jobs, { target: 'others', runId: 'again' }, csv);
    assert.equal((await run(rerun)).status, 'COMPLETED');
    assert.equal(await stored(), before, 'the file stored first is used');
    assert.equal((await rows('others')).length, 1);
  });

  it('upserts: the last record of a key wins, a refused one leaves the one before it', async () => {
    await jobs.db.query(`INSERT INTO others VALUES (1, 1, 'old'), (2, 2, 'old')`);
    const csv = 'id,qty,note\n1,10,first\n3,3,new\n1,11,second\n2,-2,refused\n3,30,newer\n';
    const launched = await upload(jobs, { target: 'others', mode: 'upsert', skipLimit: '5' }, csv);
    const done = await run(launched);
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual(await rows('others'), [
      { id: 1, qty: 11, note: 'second' },
      { id: 2, qty: 2, note: 'old' },
      { id: 3, qty: 30, note: 'newer' },
      { id: 100, qty: 1, note: 'a' },
    ]);
    assert.deepEqual(await rejects(launched.id), [[5, '23514', null]]);
  });

  it('NDJSON, gzip: records of the keys they have, exact numbers, malformed lines rejected', async () => {
    const ndjson = [
      '{"id": 200, "qty": 1, "note": "a"}',
      '{"id": 201, "note": "no qty"}',
      'not json',
      '',
      '{"id": 202, "qty": 12345678901234567890}',
      '{"id": 203, "qty": 3, "extra": 1}',
      '{"id": 204, "qty": 4, "note": "last"}',
    ].join('\n');
    // in one chunk, and in chunks of two (each one's records made CSV lines while the one before is copied)
    for (const [target, options] of [
      ['items', {}],
      ['others', { chunkSize: '2' }],
    ] as const) {
      const launched = await upload(jobs, { target, skipLimit: '3', ...options }, gzipSync(ndjson), {
        contentType: 'application/x-ndjson',
        contentEncoding: 'gzip',
      });
      assert.equal(launched.parameters.format, 'ndjson');
      assert.equal((await run(launched)).exitStatus?.code, 'COMPLETED_WITH_SKIPS');
      assert.deepEqual(await jobs.db.query(`SELECT id, qty, note FROM ${target} WHERE id >= 200 ORDER BY id`), [
        { id: 200, qty: 1, note: 'a' },
        { id: 201, qty: null, note: 'no qty' },
        { id: 204, qty: 4, note: 'last' },
      ]);
      assert.deepEqual(await rejects(launched.id), [
        [3, 'MALFORMED_JSON', null],
        [5, '22003', 'qty'],
        [6, 'UNKNOWN_COLUMN', 'extra'],
      ]);
    }
  });

  it('rejects an NDJSON upsert record without its conflict key, as its upsert would be refused, and loads the rest', async () => {
    const ndjson = ['{"id": 210, "qty": 1}', '{"qty": 2}', '{"qty": 3, "note": "x"}', '{"id": 211, "qty": 4}'].join(
      '\n',
    );
    for (const chunkSize of ['1', '100']) {
      const launched = await upload(
        jobs,
        { target: 'items', mode: 'upsert', skipLimit: '2', chunkSize, runId: `unkeyed${chunkSize}` },
        ndjson,
        {
          contentType: 'application/x-ndjson',
        },
      );
      assert.equal((await run(launched)).exitStatus?.code, 'COMPLETED_WITH_SKIPS', `chunkSize ${chunkSize}`);
      assert.deepEqual(await jobs.db.query(`SELECT id, qty FROM items WHERE id IN (210, 211) ORDER BY id`), [
        { id: 210, qty: 1 },
        { id: 211, qty: 4 },
      ]);
      assert.deepEqual(await rejects(launched.id), [
        [2, 'VALIDATION_FAILED', 'id'],
        [3, 'VALIDATION_FAILED', 'id'],
      ]);
    }
  });

  it('fails past skipLimit keeping the chunks before; a restart goes on from the saved offset', async () => {
    await jobs.db.query(`ALTER TABLE items ADD CONSTRAINT below_1015 CHECK (id < 1015)`);
    const csv = 'id,qty,note\n' + Array.from({ length: 30 }, (_, i) => `${1000 + i},1,n${i}\n`).join('');
    const launched = await upload(jobs, { target: 'items', chunkSize: '5' }, csv);
    const failed = await run(launched);
    assert.equal(failed.status, 'FAILED');
    assert.match(failed.exitStatus?.description ?? '', /^line 17: 23514 .*below_1015.*The skip limit is 0/);
    assert.equal(failed.steps[0].writeCount, 15, 'the chunks before the bad record stay');
    await jobs.db.query(`ALTER TABLE items DROP CONSTRAINT below_1015`);
    const restarted = await jobs.operator.restart(jobs.client, launched.id);
    const done = await run(restarted);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(done.steps[0].readCount, 15, 'read on from the saved offset, not from the start');
    const loaded = await jobs.db.query(`SELECT id FROM items WHERE id >= 1000 ORDER BY id`);
    assert.deepEqual(
      loaded.map((r) => r.id),
      Array.from({ length: 30 }, (_, i) => 1000 + i),
    );
  });

  it('refuses a bad upload in its answer, storing and launching nothing', async () => {
    const executions = async () =>
      Number((await jobs.db.query<{ n: string }>(`SELECT count(*) AS n FROM batch.job_executions`))[0].n);
    const [files, launched] = [await stored(), await executions()];
    const cases: [() => Promise<unknown>, string][] = [
      [() => upload(jobs, { target: 'items' }, 'id,nope\n1,2\n'), 'UNKNOWN_COLUMN'],
      [() => upload(jobs, { target: 'items' }, 'id,qty,qty\n1,2,3\n'), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items' }, 'qty,note\n1,a\n'), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items', mode: 'upsert', conflictKey: 'qty' }, 'id\n1\n'), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items' }, ''), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items' }, '\ufeff'), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items' }, 'id\n1\n', { contentType: 'text/plain' }), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items', format: 'xml' }, 'id\n1\n'), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items', nope: '1' }, 'id\n1\n'), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items', chunkSize: '0' }, 'id\n1\n'), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items', delimiter: ';;' }, 'id\n1\n'), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items' }, 'not gzip', { contentEncoding: 'gzip' }), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items' }, 'id\n1\n', { contentEncoding: 'br' }), 'VALIDATION_FAILED'],
      [() => upload(jobs, { target: 'items', header: 'false', columns: 'id,ghost' }, '1,2\n'), 'UNKNOWN_COLUMN'],
      [() => upload(jobs, { target: 'secret' }, 'id\n1\n'), 'FORBIDDEN'],
      [() => upload(jobs, { target: 'items' }, `id,note\n1,${'x'.repeat(200_000)}\n`), 'PAYLOAD_TOO_LARGE'],
      [
        () => upload(jobs, { target: 'items' }, gzipSync(Buffer.alloc(10_000_000)), { contentEncoding: 'gzip' }),
        'PAYLOAD_TOO_LARGE',
      ],
      [
        () => upload(jobs, { target: 'items' }, '{"nope": 1}\n', { contentType: 'application/x-ndjson' }),
        'UNKNOWN_COLUMN',
      ],
      // the first record after blank lines, a byte order mark, a quoted newline: found however the pieces cut them
      [
        () => upload(jobs, { target: 'items' }, '\n\n\n{"nope": 1}\n', { contentType: 'application/x-ndjson' }),
        'UNKNOWN_COLUMN',
      ],
      [() => upload(jobs, { target: 'items' }, '\ufeffid,nope\n1,2\n'), 'UNKNOWN_COLUMN'],
      [() => upload(jobs, { target: 'items' }, '"id\nx",qty\n1,2\n'), 'UNKNOWN_COLUMN'],
      // an NDJSON first record is checked as a header is
      [
        () => upload(jobs, { target: 'items' }, '{"qty": 1}\n', { contentType: 'application/x-ndjson' }),
        'VALIDATION_FAILED',
      ],
    ];
    for (const [answer, code] of cases) assert.equal((await refusal(answer())).code, code, answer.toString());
    const broken = new Readable({
      read() {
        this.push('id,qty\n1,1\n');
        this.destroy(new Error('the caller went away'));
      },
    });
    await assert.rejects(
      jobs.app
        .get(ImportUploads)
        .upload(
          jobs.client,
          { query: { target: 'items' }, contentType: 'text/csv', contentEncoding: undefined },
          broken,
        ),
      /went away/,
    );
    assert.deepEqual([await stored(), await executions()], [files, launched]);
  });

  it('finds the first record after 64 KiB of blank lines, the check going on where the last piece left it', async () => {
    const body = `${'\n'.repeat(1 << 16)}{"id": 9100, "qty": 1}\n`;
    const launched = await upload(jobs, { target: 'items', runId: 'blank' }, body, {
      contentType: 'application/x-ndjson',
    });
    assert.equal((await run(launched)).exitStatus?.code, 'COMPLETED');
    assert.deepEqual(await jobs.db.query(`SELECT id, qty FROM items WHERE id = 9100`), [{ id: 9100, qty: 1 }]);
  });

  it('keeps an uploaded file while an import of it runs, and deletes it past retention', async () => {
    const launched = await upload(jobs, { target: 'items', runId: 'kept' }, 'id,qty,note\n7000,1,a\n');
    const sha256 = launched.parameters.sha256;
    await jobs.db.query(`UPDATE batch.import_files SET created_at = now() - interval '1 year'`);
    const retention = jobs.app.get(RetentionService);
    const before = await stored();
    assert.equal((await retention.purge()).importFiles, before - 1, 'all but the one an import of which runs');
    assert.deepEqual(await jobs.db.query(`SELECT sha256 FROM batch.import_files`), [{ sha256 }]);
    await run(launched);
    assert.equal((await retention.purge()).importFiles, 1);
    assert.equal(await stored(), 0);
  });

  it('header=false: the first line is a record, its fields the columns given, in their order', async () => {
    const csv = "first;2;1\nsecond;NULL;2\n'a;b';4;3\n";
    const query = {
      target: 'headless',
      header: 'false',
      columns: 'note,qty,id',
      delimiter: ';',
      quote: "'",
      null: 'NULL',
    };
    const done = await run(await upload(jobs, query, csv));
    assert.deepEqual([done.status, done.steps[0].readCount, done.steps[0].writeCount], ['COMPLETED', 3, 3]);
    assert.deepEqual(await rows('headless'), [
      { id: 1, qty: 2, note: 'first' },
      { id: 2, qty: null, note: 'second' },
      { id: 3, qty: 4, note: 'a;b' },
    ]);
  });

  it('takes options that are text as text, whatever they spell: null=0, delimiter=9', async () => {
    const csv = 'id9qty9note\n801909a\n802959true\n';
    const done = await run(
      await upload(jobs, { target: 'items', delimiter: '9', null: '0', runId: 'text-options' }, csv),
    );
    assert.equal(done.exitStatus?.code, 'COMPLETED');
    assert.deepEqual(await jobs.db.query(`SELECT id, qty, note FROM items WHERE id IN (801, 802) ORDER BY id`), [
      { id: 801, qty: null, note: 'a' },
      { id: 802, qty: 5, note: 'true' },
    ]);
  });

  it('a file of only a header loads nothing and completes', async () => {
    const launched = await upload(jobs, { target: 'items', runId: 'empty' }, 'id,qty,note\n');
    const done = await run(launched);
    assert.deepEqual([done.status, done.steps[0].readCount], ['COMPLETED', 0]);
  });
});

describe('imports on PostgreSQL: a file of many chunks', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.items'] });
    await jobs.db.query(`CREATE TABLE items ${TABLE}`);
  });
  after(() => jobs.close());

  it('loads the first chunks in growing windows, then whole ones, every record once', async () => {
    const count = 60_000; // ~1.5 MB: windows of 256 KiB, 1 MiB, then the rest
    const csv = `id,qty,note\n${Array.from({ length: count }, (_, i) => `${i + 1},${i % 7},note number ${i + 1}\n`).join('')}`;
    const launched = await upload(jobs, { target: 'items' }, csv);
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    assert.equal(done.status, 'COMPLETED');
    const [step] = done.steps;
    assert.deepEqual([step.readCount, step.writeCount, step.commitCount], [count, count, 3]);
    const [{ n, ids }] = await jobs.db.query<{ n: string; ids: string }>(
      `SELECT count(*) AS n, sum(id) AS ids FROM items`,
    );
    assert.deepEqual([Number(n), Number(ids)], [count, (count * (count + 1)) / 2]);
  });
});

describe('imports on PostgreSQL: a refused chunk sifted', () => {
  let jobs: Jobs;
  // more values to a record than a function takes arguments (100), and types the sifting reads as COPY does
  const many = Array.from({ length: 110 }, (_, i) => `n${i + 1}`);
  before(async () => {
    jobs = await startJobs({ targets: ['public.wide'] });
    await jobs.db.query(
      `CREATE TABLE wide (id int PRIMARY KEY, code varchar(3), day date, tags varchar(2)[], ${many.map((c) => `${c} int`).join(', ')})`,
    );
  });
  after(() => jobs.close());

  it("rejects each record with COPY's own error: its first value refused, a varchar's too long one not cut", async () => {
    const record = (id: number, code: string, day: string, tags: string, last = '1') =>
      [id, code, day, tags, ...many.map((_, i) => (i === many.length - 1 ? last : String(i)))].join(',');
    const csv = [
      `id,code,day,tags,${many.join(',')}`,
      record(1, 'abc', '2026-01-31', '{a}'),
      record(2, 'abc', '2026-02-30', '{a}'), // the refusal that starts the sifting
      record(3, 'abc', '2026-01-31', '{a}'),
      record(4, 'abcd', 'soon', '{a}'), // too long for varchar(3), before a day that is none
      record(5, '"a,b"', '2026-03-01', '"{a,b}"'),
      record(6, 'abc', '2026-01-31', '{abc}'), // cast, {ab}; COPY refuses it
      record(7, 'abc', '2026-01-31', '{a}', 'x'), // its 114th value
      record(8, 'abc', '2026-01-31', '{a}', '3000000000'),
      record(9, 'abc', '2026-01-31', '{a}'),
    ].join('\n');
    const launched = await upload(jobs, { target: 'wide', skipLimit: '10' }, csv);
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    assert.deepEqual([done.status, done.steps[0].writeCount], ['COMPLETED', 4]);
    const rejects = (await jobs.operator.rejects(jobs.client, launched.id, 1000)).items;
    assert.deepEqual(
      rejects.map((r) => [r.line, r.code, r.column, r.message]),
      [
        [3, '22008', 'day', 'date/time field value out of range: "2026-02-30"'],
        [5, '22001', 'code', 'value too long for type character varying(3)'],
        [7, '22001', 'tags', 'value too long for type character varying(2)'],
        [8, '22P02', 'n110', 'invalid input syntax for type integer: "x"'],
        [9, '22003', 'n110', 'value "3000000000" is out of range for type integer'],
      ],
    );
    const loaded = await jobs.db.query<{ id: number }>(`SELECT id FROM wide ORDER BY id`);
    assert.deepEqual(
      loaded.map((r) => r.id),
      [1, 3, 5, 9],
    );
  });
});

describe('imports on PostgreSQL: what uploads may take', () => {
  let jobs: Jobs;
  const QUOTA = 100_000;
  const files = async () =>
    (await jobs.db.query<{ bytes: string }>(`SELECT bytes FROM batch.import_files ORDER BY id`)).map((r) =>
      Number(r.bytes),
    );
  /** A CSV file of about `bytes` bytes, its rows numbered from `first`. */
  const csvOf = (first: number, bytes: number) =>
    `id,qty,note\n${Array.from({ length: Math.ceil(bytes / 20) }, (_, i) => `${first + i},1,${'n'.repeat(12)}\n`).join('')}`;
  /** A body that sends `start` and then nothing, as a caller that stalls. */
  const stalled = (start: string) => {
    const body = new Readable({ read() {} });
    body.push(start);
    return body;
  };
  const uploadOf = (body: Readable) =>
    jobs.app
      .get(ImportUploads)
      .upload(jobs.client, { query: { target: 'items' }, contentType: 'text/csv', contentEncoding: undefined }, body);

  before(async () => {
    jobs = await startJobs({ targets: ['public.items'] }, [], {
      BATCH_IMPORT_MAX_UPLOADS: '20',
      BATCH_IMPORT_MAX_CLIENT_UPLOADS: '20',
      BATCH_IMPORT_CLIENT_QUOTA_BYTES: String(QUOTA),
      BATCH_IMPORT_IDLE_TIMEOUT_MS: '300',
    });
    await jobs.db.query(`CREATE TABLE items ${TABLE}`);
  });
  after(() => jobs.close());

  it('twenty uploads of the same bytes at once: one launches, every other is CONFLICT, none an error', async () => {
    const csv = csvOf(1, 2000);
    const answers = await Promise.allSettled(Array.from({ length: 20 }, () => upload(jobs, { target: 'items' }, csv)));
    const launched = answers.filter((answer) => answer.status === 'fulfilled');
    assert.equal(launched.length, 1);
    for (const answer of answers) {
      if (answer.status === 'fulfilled') continue;
      const error = answer.reason as BatchError;
      assert.ok(error instanceof BatchError, String(error));
      assert.equal(error.code, 'CONFLICT');
      assert.deepEqual(error.details, { reason: 'JOB_EXECUTION_RUNNING', executionId: launched[0].value.id });
    }
    assert.equal((await files()).length, 1, 'stored once');
    await jobs.runAll();
    await jobs.db.query(`DELETE FROM items; DELETE FROM batch.import_files`);
  });

  it("holds a client's stored data sets to its quota, counted as the body arrives and again when it is named", async () => {
    const first = await upload(jobs, { target: 'items' }, csvOf(1, 60_000));
    const [storedFirst] = await files();
    const refused = await refusal(upload(jobs, { target: 'items' }, csvOf(10_000, 60_000)));
    assert.equal(refused.code, 'PAYLOAD_TOO_LARGE');
    assert.match(refused.message, new RegExp(`quota of ${QUOTA} bytes .*: ${storedFirst} bytes are stored`));
    // a gzip bomb is refused once its decompressed bytes pass the quota, far below BATCH_IMPORT_MAX_BYTES
    const bomb = gzipSync(Buffer.concat([Buffer.from('id,qty,note\n'), Buffer.alloc(20_000_000, '1,1,a\n')]));
    const exploded = await refusal(upload(jobs, { target: 'items' }, bomb, { contentEncoding: 'gzip' }));
    assert.deepEqual([exploded.code, /quota/.test(exploded.message)], ['PAYLOAD_TOO_LARGE', true]);
    // each fits beside what was stored when it began; named one after the other, the second no longer does
    const both = await Promise.allSettled([
      upload(jobs, { target: 'items' }, csvOf(20_000, 25_000)),
      upload(jobs, { target: 'items' }, csvOf(30_000, 25_000)),
    ]);
    assert.deepEqual(both.map((answer) => answer.status).sort(), ['fulfilled', 'rejected']);
    const second = both.find((answer) => answer.status === 'rejected')!.reason as BatchError;
    assert.equal(second.code, 'PAYLOAD_TOO_LARGE');
    assert.ok((await files()).reduce((sum, bytes) => sum + bytes, 0) <= QUOTA, 'within the quota');
    // what retention deleted no longer counts
    await jobs.runAll();
    assert.equal((await jobs.execution(first.id)).status, 'COMPLETED');
    await jobs.db.query(`UPDATE batch.import_files SET created_at = now() - interval '1 year'`);
    await jobs.app.get(RetentionService).purge();
    assert.equal((await upload(jobs, { target: 'items' }, csvOf(10_000, 60_000))).status, 'STARTING');
    await jobs.runAll();
    await jobs.db.query(`DELETE FROM items; DELETE FROM batch.import_files`);
  });

  it('cuts a body that sends nothing for BATCH_IMPORT_IDLE_TIMEOUT_MS: REQUEST_TIMEOUT, nothing stored', async () => {
    const executions = await jobs.db.query(`SELECT id FROM batch.job_executions`);
    const body = stalled('id,qty,note\n1,1,a\n');
    const refused = await refusal(uploadOf(body));
    assert.equal(refused.code, 'REQUEST_TIMEOUT');
    assert.deepEqual(await files(), []);
    assert.deepEqual(await jobs.db.query(`SELECT id FROM batch.job_executions`), executions, 'nothing launched');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(body.destroyed, 'a body still silent after the answer is closed');
  });
});
