import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { BatchError } from '../../src/services/batch-error';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { Jobs, startJobs, upload } from '../support/jobs-app';

async function refusal(promise: Promise<unknown>): Promise<BatchError> {
  const error = await promise.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof BatchError, String(error));
  return error;
}

describe('what an import says, in the names of the file and the table', () => {
  let jobs: Jobs;
  const run = async (launched: IJobExecution) => {
    await jobs.runAll();
    return jobs.execution(launched.id);
  };
  const rejects = async (id: string) => (await jobs.operator.rejects(jobs.client, id, 1000)).items;

  before(async () => {
    jobs = await startJobs({ targets: ['public.places'] });
    await jobs.db.query(`CREATE TABLE places (zip text PRIMARY KEY, city text, qty int, state text)`);
  });
  after(() => jobs.close());

  it("names a reject's column as the file does, not as a scratch table did", async () => {
    // the first record's qty fails, so the chunk is sifted: the record missing a field is found in the scratch table
    const csv = 'zip,city,qty,state\n00501,Holtsville,x,NY\n00544,Holtsville,1\n01001,Agawam,2,MA\n';
    const launched = await upload(jobs, { target: 'places', skipLimit: '5' }, csv);
    assert.equal((await run(launched)).exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual(
      (await rejects(launched.id)).map((r) => [r.line, r.code, r.column, r.message]),
      [
        [2, '22P02', 'qty', 'invalid input syntax for type integer: "x"'],
        [3, '22P04', 'state', 'missing data for column "state"'],
      ],
    );
  });

  it('reports a record that a stray quote runs over many lines with its first and last line', async () => {
    const lines = Array.from({ length: 100 }, (_, i) => `${10000 + i},Town ${i},1,ST`);
    const csv = ['zip,city,qty,state', '00501,"Holtsville,1,NY', ...lines].join('\n') + '\n';
    const launched = await upload(jobs, { target: 'places', skipLimit: '5' }, csv);
    await run(launched);
    const [reject] = await rejects(launched.id);
    assert.equal(reject.line, 2);
    assert.match(
      reject.message,
      /^unterminated CSV quoted field \(the record runs from line 2 to line 102, a quoted field holding the newlines between: if a quote on line 2 is meant as a character, double it inside a quoted field\)$/,
    );
  });

  it('takes gzip by its first bytes, whatever Content-Encoding says', async () => {
    const csv = (zip: string) => `zip,city,qty,state\n${zip},Boston,1,MA\n`;
    for (const [zip, contentEncoding] of <[string, string | undefined][]>[
      ['02101', undefined],
      ['02102', 'identity'],
      ['02103', 'gzip'],
    ]) {
      const launched = await upload(jobs, { target: 'places' }, gzipSync(csv(zip)), { contentEncoding });
      assert.equal((await run(launched)).status, 'COMPLETED', String(contentEncoding));
    }
    assert.deepEqual(
      (await jobs.db.query(`SELECT zip FROM places WHERE city = 'Boston' ORDER BY zip`)).map((r) => r.zip),
      ['02101', '02102', '02103'],
    );
    const plain = await refusal(upload(jobs, { target: 'places' }, csv('02104'), { contentEncoding: 'gzip' }));
    assert.equal(plain.code, 'VALIDATION_FAILED');
    assert.match(plain.message, /^The body is not gzip, as its Content-Encoding says/);
  });

  it("refuses a header that does not match with the table's columns and what the file more likely is", async () => {
    const columns = 'Its columns are zip, city, qty, state.';
    const cases: [string, Record<string, string>, RegExp][] = [
      [
        'zip;city;qty;state\n00501;Holtsville;1;NY\n',
        {},
        /^public\.places has no column "zip;city;qty;state", which the header names\. Its columns are zip, city, qty, state\. The header looks separated by ";": send delimiter=; \(the command line: --delimiter ';'\)\.$/,
      ],
      ['zip\tcity\n', {}, /separated by tabs: send delimiter=%09 \(the command line: --delimiter \$'\\t'\)\.$/],
      [
        '00501,Holtsville,1,NY\n',
        {},
        /^public\.places has no column "00501", which the header names\. Its columns are zip, city, qty, state\. If the first line is data, not a header: send header=false, with columns= naming the columns of its fields in order \(the command line: --no-header --columns zip,city,qty,state\)\.$/,
      ],
      [
        'zip,town\n',
        {},
        /^public\.places has no column "town", which the header names\. Its columns are zip, city, qty, state\.$/,
      ],
      [
        '1,2\n',
        { header: 'false', columns: 'zip,ghost' },
        /^public\.places has no column "ghost", which the parameter columns names\./,
      ],
    ];
    for (const [body, query, message] of cases) {
      const refused = await refusal(upload(jobs, { target: 'places', ...query }, body));
      assert.equal(refused.code, 'UNKNOWN_COLUMN');
      assert.match(refused.message, message);
      assert.ok(refused.message.includes(columns));
      assert.deepEqual((refused.details as { columns: string[] }).columns, ['zip', 'city', 'qty', 'state']);
    }
    const ndjson = await refusal(
      upload(jobs, { target: 'places' }, '{"zip": "1", "town": "x"}\n', { contentType: 'application/x-ndjson' }),
    );
    assert.equal(ndjson.message, `public.places has no column "town", which a record's keys names. ${columns}`);
  });

  it('never says binary: a header of bytes that do not print is escaped and cut', async () => {
    const binary = Buffer.concat([
      Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x08, 0x00]),
      Buffer.alloc(3000, 0xc3),
      Buffer.from('\n'),
    ]);
    const refused = await refusal(upload(jobs, { target: 'places' }, binary));
    assert.equal(refused.code, 'UNKNOWN_COLUMN');
    assert.match(
      refused.message,
      /^public\.places has no column "PK\\u0003\\u0004\\u0014\\u0000\\b\\u0000(\\ufffd)+…", which the header names/,
    );
    assert.ok(refused.message.length < 800, refused.message);
    const printable = [...refused.message].every((c) => c.charCodeAt(0) >= 0x20 && c !== '\ufffd');
    assert.ok(printable, 'every character prints');
  });
});
