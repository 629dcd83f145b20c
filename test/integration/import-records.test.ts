import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { BatchError } from '../../src/services/batch-error';
import { ImportUploads, UploadRequest } from '../../src/services/imports/import-uploads.service';
import { Jobs, startJobs } from '../support/jobs-app';

/** BATCH_IMPORT_MAX_RECORD_BYTES here: small, so that the records past it are quick to make. */
const MAX_RECORD_BYTES = 64 << 10;
const NDJSON = { contentType: 'application/x-ndjson' };

/** An upload of `body` in pieces of 64 KiB, as a socket delivers it. */
function upload(
  jobs: Jobs,
  query: Record<string, string>,
  body: string | Buffer,
  headers: Partial<UploadRequest> = {},
) {
  const data = typeof body === 'string' ? Buffer.from(body) : body;
  const pieces = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) =>
    data.subarray(i * 65536, i * 65536 + 65536),
  );
  return jobs.app
    .get(ImportUploads)
    .upload(
      jobs.client,
      { query, contentType: 'text/csv', contentEncoding: undefined, ...headers },
      Readable.from(pieces),
    );
}

async function refusal(promise: Promise<unknown>): Promise<BatchError> {
  const error = await promise.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof BatchError, String(error));
  return error;
}

/** A quoted CSV field of about `bytes` bytes, a newline in it every 1,000. */
const longField = (bytes: number) => `"${('x'.repeat(999) + '\n').repeat(Math.ceil(bytes / 1000))}"`;

/** The records a load may meet from a careless or hostile caller: each a reject or a refusal, never a failed load. */
describe('imports on PostgreSQL: records no load may take', () => {
  let jobs: Jobs;
  const run = async (launched: IJobExecution) => {
    await jobs.runAll();
    return jobs.execution(launched.id);
  };
  const rejects = async (id: string) => (await jobs.operator.rejects(jobs.client, id, 1000)).items;
  const ids = async () => (await jobs.db.query<{ id: number }>(`SELECT id FROM items ORDER BY id`)).map((r) => r.id);
  /** `csv` loaded into `items`, emptied first, once for each chunk size: each load's status, rows and rejects. */
  const loadedInChunks = async (csv: string, chunkSizes: string[], runId: string) => {
    const loads = [];
    for (const chunkSize of chunkSizes) {
      await jobs.db.query(`TRUNCATE items`);
      const query = { target: 'items', skipLimit: '10', chunkSize, runId: `${runId}${chunkSize}` };
      const launched = await upload(jobs, query, csv);
      const { exitStatus } = await run(launched);
      const rows = await jobs.db.query<{ id: number; note: string }>(`SELECT id, note FROM items ORDER BY id`);
      loads.push({ chunkSize, status: exitStatus?.code, rows, rejected: await rejects(launched.id) });
    }
    return loads;
  };

  before(async () => {
    jobs = await startJobs({ targets: ['public.items'] }, [], {
      BATCH_IMPORT_MAX_RECORD_BYTES: String(MAX_RECORD_BYTES),
    });
    await jobs.db.query(`CREATE TABLE items (id int PRIMARY KEY, qty int CHECK (qty >= 0), note text, doc jsonb)`);
  });
  after(() => jobs.close());

  it('a gzip of one record past BATCH_IMPORT_MAX_RECORD_BYTES: a reject with its line, the records around it load', async () => {
    const csv = `id,qty,note\n1,1,a\n2,2,b\n3,3,${longField(3_000_000)}\n4,4,d\n5,5,e\n`;
    const launched = await upload(jobs, { target: 'items', skipLimit: '1' }, gzipSync(csv), {
      contentEncoding: 'gzip',
    });
    const done = await run(launched);
    assert.deepEqual([done.status, done.exitStatus?.code], ['COMPLETED', 'COMPLETED_WITH_SKIPS']);
    assert.deepEqual([done.steps[0].readCount, done.steps[0].writeCount, done.steps[0].readSkipCount], [5, 4, 1]);
    assert.deepEqual(await ids(), [1, 2, 4, 5]);
    const [reject] = await rejects(launched.id);
    assert.deepEqual([reject.line, reject.byteOffset, reject.code, reject.column], [4, 24, 'RECORD_TOO_LARGE', null]);
    assert.match(reject.message, new RegExp(`longer than ${MAX_RECORD_BYTES} bytes.*BATCH_IMPORT_MAX_RECORD_BYTES`));
    assert.equal(reject.record, csv.slice(24, 24 + 1024));
  });

  it('a record past the limit is a reject wherever the chunks split, and the lines after it stay right', async () => {
    const csv = [
      'id,qty,note',
      '10,1,a',
      `11,1,${longField(200_000)}`, // within the first bytes read
      '12,1,b',
      `13,1,${longField(1_000_000)}`, // longer than any window
      '14,-1,refused',
      '15,1,c',
    ].join('\n');
    const ndjson = [
      '{"id": 10, "qty": 1}',
      JSON.stringify({ id: 11, note: 'x'.repeat(200_000) }),
      '{"id": 12}',
      JSON.stringify({ id: 13, note: 'x'.repeat(1_000_000) }),
      '{"id": 14, "qty": -1}',
      '{"id": 15}',
    ].join('\n');
    // the long CSV fields hold 200 and 1,000 newlines
    const lines = { csv: [3, 205, 1206], ndjson: [2, 4, 5] };
    for (const [format, body, headers] of [
      ['csv', csv, {}],
      ['ndjson', ndjson, NDJSON],
    ] as const)
      for (const chunkSize of ['1', '2', '100']) {
        await jobs.db.query(`TRUNCATE items`);
        const launched = await upload(
          jobs,
          { target: 'items', skipLimit: '3', chunkSize, runId: chunkSize },
          body,
          headers,
        );
        const done = await run(launched);
        assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS', `${format} ${chunkSize}`);
        assert.deepEqual(await ids(), [10, 12, 15], `${format} ${chunkSize}`);
        assert.deepEqual(
          (await rejects(launched.id)).map((r) => [r.line, r.code]),
          [
            [lines[format][0], 'RECORD_TOO_LARGE'],
            [lines[format][1], 'RECORD_TOO_LARGE'],
            [lines[format][2], '23514'],
          ],
          `${format} ${chunkSize}`,
        );
      }
  });

  it("any byte is a reject's record: a NUL and bytes that are not UTF-8 stored and shown escaped", async () => {
    await jobs.db.query(`TRUNCATE items`);
    const csv = Buffer.concat([
      Buffer.from('id,qty,note\n20,1,a\0b\n21,1,'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('\n22,1,ok\n'),
    ]);
    const launched = await upload(jobs, { target: 'items', skipLimit: '2' }, csv);
    const done = await run(launched);
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS', done.exitStatus?.description ?? '');
    assert.deepEqual(
      (await rejects(launched.id)).map((r) => [r.line, r.code, r.record]),
      [
        [2, '22021', '20,1,a\\u0000b'],
        [3, '22021', '21,1,\ufffd\ufffd'],
      ],
    );
    const ndjson = Buffer.concat([
      Buffer.from('{"id": 23, "note": "a\\u0000b"}\n{"id": 24, "k\\u0000": 1}\n{"id": 25, "note": "a\0b"}\n'),
      Buffer.from('{"id": 26, "note": "a'),
      Buffer.from([0xff]),
      Buffer.from('b"}\n{"id": 27}\n'),
    ]);
    const loaded = await upload(jobs, { target: 'items', skipLimit: '4' }, ndjson, NDJSON);
    assert.equal((await run(loaded)).exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual(
      (await rejects(loaded.id)).map((r) => [r.line, r.code, r.column, r.record]),
      [
        [1, '22021', null, '{"id": 23, "note": "a\\u0000b"}'],
        [2, 'UNKNOWN_COLUMN', 'k\\u0000', '{"id": 24, "k\\u0000": 1}'],
        [3, 'MALFORMED_JSON', null, '{"id": 25, "note": "a\\u0000b"}'],
        [4, '22021', null, '{"id": 26, "note": "a\ufffdb"}'],
      ],
    );
    assert.deepEqual(await ids(), [22, 27]);
  });

  it('a record nested deeper than 64 levels is a reject, as a later line and as the first one', async () => {
    const nested = (depth: number) => `{"id": ${depth}, "doc": ${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
    for (const body of [
      [nested(64), nested(65), nested(30_000), '{"id": 1}'].join('\n'),
      [nested(30_000), nested(64), nested(65), '{"id": 1}'].join('\n'),
    ]) {
      await jobs.db.query(`TRUNCATE items`);
      const launched = await upload(jobs, { target: 'items', skipLimit: '2' }, body, NDJSON);
      assert.equal((await run(launched)).exitStatus?.code, 'COMPLETED_WITH_SKIPS');
      assert.deepEqual(
        (await rejects(launched.id)).map((r) => [r.code, r.message]),
        Array(2).fill(['NESTED_TOO_DEEP', 'the record is nested deeper than 64 levels']),
      );
      assert.deepEqual(await ids(), [1, 64]);
    }
  });

  it('a key given twice in a record is a reject, at any depth and however it is spelled', async () => {
    const ndjson = [
      '{"id": 30, "qty": 1, "qty": 2}',
      '{"id": 31, "qty": 1, "q\\u0074y": 2}',
      '{"id": 32, "doc": {"a": 1, "b": {"c": 1, "c": 2}}}',
      '{"id": 33, "doc": {"a": 1, "b": {"a": 2}}, "qty": 3}',
      '{"id": 34, "doc": [{"a": 1}, {"a": 2}]}',
    ].join('\n');
    await jobs.db.query(`TRUNCATE items`);
    const launched = await upload(jobs, { target: 'items', skipLimit: '3' }, ndjson, NDJSON);
    assert.equal((await run(launched)).exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual(
      (await rejects(launched.id)).map((r) => [r.line, r.code, r.column, r.message]),
      [
        [1, 'DUPLICATE_KEY', 'qty', 'the key qty is given twice'],
        [2, 'DUPLICATE_KEY', 'qty', 'the key qty is given twice'],
        [3, 'DUPLICATE_KEY', 'doc', 'the key c is given twice'],
      ],
    );
    assert.deepEqual(await ids(), [33, 34]);
  });

  it("a line of \\. alone, COPY's end of data: a record as any other, and the rest loaded", async () => {
    const csv = ['id,qty,note\n', '50,1,a\n', '\\.\n', '51,1,\\.\n', '\\.\r\n', '52,1,c\n', '\\.'].join('');
    for (const { chunkSize, status, rows, rejected } of await loadedInChunks(csv, ['1', '2', '100'], 'eod')) {
      assert.deepEqual(
        { status, rows: rows.map((r) => `${r.id}:${r.note}`), rejects: rejected.map((r) => [r.line, r.record]) },
        {
          status: 'COMPLETED_WITH_SKIPS',
          rows: ['50:a', '51:\\.', '52:c'],
          rejects: [3, 5, 7].map((line) => [line, '\\.']),
        },
        `chunkSize ${chunkSize}`,
      );
      // \\. is no integer (22P02), or the sift finds the record short of fields first (22P04)
      for (const { code } of rejected) assert.ok(['22P02', '22P04'].includes(code), code);
    }
  });

  it('stores an NDJSON string into a jsonb column as a JSON string, as an operation does', async () => {
    const ndjson = [
      '{"id": 220, "doc": "hello"}',
      '{"id": 221, "doc": "{\\"a\\": 1}"}',
      '{"id": 222, "doc": {"a": 1}}',
    ];
    const launched = await upload(jobs, { target: 'items', runId: 'json-strings' }, ndjson.join('\n'), {
      contentType: 'application/x-ndjson',
    });
    assert.equal((await run(launched)).exitStatus?.code, 'COMPLETED');
    const docs = await jobs.db.query(
      `SELECT id, jsonb_typeof(doc) AS type, doc FROM items WHERE id >= 220 AND id < 230 ORDER BY id`,
    );
    assert.deepEqual(docs, [
      { id: 220, type: 'string', doc: 'hello' },
      { id: 221, type: 'string', doc: '{"a": 1}' },
      { id: 222, type: 'object', doc: { a: 1 } },
    ]);
  });

  it('a carriage return: the same records rejected and loaded wherever the chunks split', async () => {
    // LF and CRLF line ends mixed, carriage returns inside quotes and outside them
    const csv = [
      'id,qty,note\n',
      '40,1,a\n',
      '41,1,b\rc\n', // outside quotes: refused
      '42,1,"b\rc"\r\n',
      '43,1,d\r\n',
      '44,1,e\n',
      '45,1,f\r\r\n',
      '46,1,"g\r\nh"\n',
      '47,1,\rk\r\n',
      '48,1,z\r',
    ].join('');
    const results = (await loadedInChunks(csv, ['1', '2', '3', '4', '5', '100'], 'cr')).map((load) => ({
      chunkSize: load.chunkSize,
      status: load.status,
      rows: load.rows.map((r) => `${r.id}:${JSON.stringify(r.note)}`),
      rejects: load.rejected.map((r) => [r.line, r.code, r.message]),
    }));
    const expected = {
      status: 'COMPLETED_WITH_SKIPS',
      rows: ['40:"a"', '42:"b\\rc"', '43:"d"', '44:"e"', '46:"g\\r\\nh"', '48:"z"'],
      rejects: [3, 7, 10].map((line) => [line, '22P04', 'unquoted carriage return found in data']),
    };
    for (const { chunkSize, ...result } of results) assert.deepEqual(result, expected, `chunkSize ${chunkSize}`);
  });

  it('an import launched with a sha256 of no data set this client uploaded is refused at launch', async () => {
    const launched = await upload(jobs, { target: 'items', runId: 'sha' }, 'id\n50\n');
    await run(launched);
    const sha256 = launched.parameters.sha256 as string;
    const launch = (parameters: Record<string, unknown>) =>
      jobs.operator.launch(jobs.client, 'import', { target: 'items', format: 'csv', ...parameters }, {});
    for (const unknown of ['0'.repeat(64), 'pending', sha256.toUpperCase()]) {
      const refused = await refusal(launch({ sha256: unknown }));
      assert.equal(refused.code, 'VALIDATION_FAILED');
      assert.deepEqual((refused.details as { problems: { field: string }[] }).problems[0].field, 'sha256');
    }
    await jobs.db.query(`TRUNCATE items`);
    const again = await launch({ sha256, runId: 'sha again' });
    const ran = await run(again);
    assert.equal(ran.status, 'COMPLETED', ran.exitStatus?.description ?? '');
  });

  it('refuses options that contradict each other, at upload and at launch', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ null: ',' }, 'null'],
      [{ null: 'a,b' }, 'null'],
      [{ null: '"' }, 'null'],
      [{ null: 'N', quote: 'N' }, 'null'],
      [{ null: 'a\rb' }, 'null'],
      [{ delimiter: ';', quote: ';' }, 'quote'],
    ];
    const launched = await upload(jobs, { target: 'items', runId: 'options' }, 'id\n60\n');
    for (const [options, field] of cases) {
      const refused = await refusal(upload(jobs, { target: 'items', ...options }, 'id\n61\n'));
      const launch = refusal(
        jobs.operator.launch(
          jobs.client,
          'import',
          { ...launched.parameters, runId: 'options again' },
          { ...launched.options, ...options },
        ),
      );
      for (const answer of [refused, await launch]) {
        assert.equal(answer.code, 'VALIDATION_FAILED', JSON.stringify(options));
        assert.equal((answer.details as { problems: { field: string }[] }).problems[0].field, field);
      }
    }
    const fine = await upload(
      jobs,
      { target: 'items', runId: 'fine', null: 'NULL', delimiter: ';' },
      'id;qty\n62;NULL\n',
    );
    assert.equal((await run(fine)).status, 'COMPLETED');
  });
});
