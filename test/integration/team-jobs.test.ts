import assert from 'node:assert/strict';
import { Module } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import { ExpireHoldsJob } from '../../src/jobs/expire-holds.job';
import { Jobs, startJobs } from '../support/jobs-app';

@Module({ providers: [ExpireHoldsJob] })
class ExampleJobs {}

/** The example of a team's own job (src/jobs, the README's), run as a team would list it. */
describe("a team's own job: the example in src/jobs", () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.holds'], sources: ['public.holds'] }, [ExampleJobs]);
    await jobs.db.query(`
      CREATE TABLE holds (id bigint PRIMARY KEY, expires_at timestamptz NOT NULL);
      INSERT INTO holds SELECT g, timestamptz '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 12000) g;`);
  });
  after(() => jobs.close());

  it('deletes the holds that expired before `before`, 5,000 a chunk, and no other', async () => {
    const launched = await jobs.operator.launch(jobs.client, 'expire-holds', { before: '2026-01-08T00:00:00Z' }, {});
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual([done.steps[0].readCount, done.steps[0].writeCount, done.steps[0].commitCount], [10079, 10079, 3]);
    const [{ left, first }] = await jobs.db.query<{ left: string; first: string }>(
      `SELECT count(*) AS left, min(id) AS first FROM holds`,
    );
    assert.deepEqual([Number(left), Number(first)], [12000 - 10079, 10080]);
  });
});
