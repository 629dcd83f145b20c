import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IJobExecution, IJobReject } from '../../src/interfaces/job.interfaces';
import { Jobs, startJobs, upload } from '../support/jobs-app';

describe('a job past its skip limit: where, why, what to change, and the rejects that failed it', () => {
  let jobs: Jobs;
  const rejects = async (id: string) =>
    (await jobs.operator.rejects(jobs.client, id, 1000)).items.map((r: IJobReject) => [r.line, r.code, r.column]);
  const run = async (launched: IJobExecution) => {
    await jobs.runAll();
    return jobs.execution(launched.id);
  };

  before(async () => {
    jobs = await startJobs({ targets: ['public.items', 'public.copied'], sources: ['public.originals'] });
    await jobs.db.query(`CREATE TABLE items (id int PRIMARY KEY, qty int, note text);
      CREATE TABLE copied (id int PRIMARY KEY, qty int CHECK (qty >= 0));
      CREATE TABLE originals AS SELECT i AS id, CASE WHEN i = 42 THEN -1 ELSE i END AS qty FROM generate_series(1, 100) i;
      ALTER TABLE originals ADD PRIMARY KEY (id)`);
  });
  after(() => jobs.close());

  it('an import: the record, its column and value, the limit, the rejects; launched again with more, it loads', async () => {
    const csv = 'id,qty,note\n1,1,a\n2,2,b\n3,north,c\n4,4,d\n';
    const launched = await upload(jobs, { target: 'items', chunkSize: '2' }, csv);
    const failed = await run(launched);
    assert.equal(failed.status, 'FAILED');
    const description = failed.exitStatus?.description ?? '';
    assert.match(
      description,
      /^line 4, column qty, value "north": 22P02 invalid input syntax for type integer: "north"\. The skip limit is 0 \(the option skipLimit\): nothing refused may be skipped; /,
    );
    assert.match(description, new RegExp(`GET /api/jobs/executions/${launched.id}/rejects`));
    assert.match(description, /skipLimit=N above 0 \(the command line: --skip-limit N\)/);
    assert.deepEqual(await rejects(launched.id), [[4, '22P02', 'qty']], 'the reject that failed it is listed');
    const step = failed.steps[0];
    assert.deepEqual([step.writeCount, step.writeSkipCount], [2, 1], 'the chunk before stays; the reject is counted');

    const again = await jobs.operator.launch(jobs.client, 'import', launched.parameters, { skipLimit: 1 });
    assert.equal(again.instanceId, launched.instanceId, 'the same instance, from where it stopped');
    const done = await run(again);
    assert.deepEqual([done.status, done.exitStatus?.code], ['COMPLETED', 'COMPLETED_WITH_SKIPS']);
    assert.deepEqual(
      (await jobs.db.query(`SELECT id FROM items ORDER BY id`)).map((r) => r.id),
      [1, 2, 4],
    );
  });

  it("past a limit above 0: the chunk's rejects within it are listed with the one past it", async () => {
    // chunks of two: line 3 is skipped in the first; in the second, line 4 is within the limit, line 5 past it
    const csv = 'id,qty,note\n10,1,a\n11,x,b\n12,y,c\n13,z,d\n14,1,e\n';
    const launched = await upload(jobs, { target: 'items', chunkSize: '2', skipLimit: '2' }, csv);
    const failed = await run(launched);
    assert.equal(failed.status, 'FAILED');
    assert.match(
      failed.exitStatus?.description ?? '',
      /^line 5, column qty, value "z": 22P02 .*2 refused may be skipped, and this is one more/,
    );
    assert.deepEqual(await rejects(launched.id), [
      [3, '22P02', 'qty'],
      [4, '22P02', 'qty'],
      [5, '22P02', 'qty'],
    ]);
    assert.equal(failed.steps[0].writeSkipCount, 3);
  });

  it('an NDJSON record: the value as written, however large', async () => {
    const ndjson = '{"id": 20, "qty": 1}\n{"id": 21, "qty": 12345678901234567890}\n';
    const launched = await upload(jobs, { target: 'items' }, ndjson, { contentType: 'application/x-ndjson' });
    const failed = await run(launched);
    assert.match(failed.exitStatus?.description ?? '', /^line 2, column qty, value "12345678901234567890": 22003 /);
    assert.deepEqual(await rejects(launched.id), [[2, '22003', 'qty']]);
  });

  it("a copy: the row's key, and how to launch it again", async () => {
    const launched = await jobs.operator.launch(
      jobs.client,
      'copy',
      { source: 'originals', target: 'copied' },
      { chunkSize: 10 },
    );
    const failed = await run(launched);
    assert.equal(failed.status, 'FAILED');
    const description = failed.exitStatus?.description ?? '';
    assert.match(description, /^id = 42: 23514 new row for relation "copied" violates check constraint/);
    assert.match(description, /POST \/api\/jobs\/copy\/executions\) and the option skipLimit above 0/);
    assert.doesNotMatch(description, /--skip-limit/, 'the command line does not copy');
    const [reject] = (await jobs.operator.rejects(jobs.client, launched.id)).items;
    assert.deepEqual([reject.code, reject.record], ['23514', 'id = 42']);
    assert.equal(failed.steps[0].writeCount, 40, 'the chunks before stay');
  });
});
