import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { Jobs, startJobs, upload } from '../support/jobs-app';

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
});
