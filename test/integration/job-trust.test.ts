import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Injectable, Module } from '@nestjs/common';
import { ImportUploads } from '../../src/services/imports/import-uploads.service';
import { job, tasklet, type JobDefinition } from '../../src/services/jobs/job-definition';
import { BatchJob } from '../../src/services/jobs/job-registry.service';
import { JobSchedules } from '../../src/services/jobs/job-schedules.service';
import { ClientService } from '../../src/services/access/client.service';
import { BatchError } from '../../src/services/batch-error';
import { Jobs, startJobs } from '../support/jobs-app';

/** A job that does nothing: its launches cost only what a launch costs. */
@BatchJob()
@Injectable()
class NoopJob {
  readonly definition: JobDefinition = job('noop')
    .describe('does nothing')
    .parameter('n', { type: 'integer', description: 'any number' })
    .step(
      'nothing',
      tasklet(async () => 'FINISHED'),
    )
    .build();
}

@Module({ providers: [NoopJob] })
class NoopJobModule {}

/** What a client's launches may and may not do to the job instances, grants and other clients. */
describe('jobs: grants at every chunk, instances by meaning, ends that stay ended', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs(
      { targets: ['public.dst', 'public.dst2', 'dst3', 'dst4'], sources: ['public.src'] },
      [NoopJobModule],
      { BATCH_JOB_MAX_RUNNING_PER_CLIENT: '2', BATCH_JOB_MAX_SCHEDULES_PER_CLIENT: '1000' },
    );
    await jobs.db.query(`
      CREATE TABLE src (id int PRIMARY KEY, note text);
      INSERT INTO src SELECT g, 'n' || g FROM generate_series(1, 20000) g;
      CREATE TABLE dst (id int PRIMARY KEY, note text);
      CREATE TABLE dst2 (id int PRIMARY KEY, note text);
      CREATE TABLE dst3 (id int PRIMARY KEY, note text);
      CREATE TABLE dst4 (id int PRIMARY KEY CHECK (id <> 5), note text);`);
  });
  after(() => jobs.close());

  async function refusal(promise: Promise<unknown>): Promise<BatchError> {
    return promise.then(
      () => assert.fail('expected a refusal'),
      (error: unknown) => error as BatchError,
    );
  }

  /** Runs `launched` until `change` may be made mid-copy, makes it, and answers the execution once it ended. */
  async function changedMidCopy(target: string, change: () => Promise<unknown>) {
    const launched = await jobs.operator.launch(jobs.client, 'copy', { source: 'src', target }, { chunkSize: 50 });
    const running = jobs.runAll();
    for (;;) {
      const [step] = (await jobs.execution(launched.id)).steps;
      if ((step?.commitCount ?? 0) >= 3) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await change();
    const copied = Number((await jobs.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${target}`))[0].n);
    await running;
    const ended = await jobs.execution(launched.id);
    const after = Number((await jobs.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${target}`))[0].n);
    return { ended, copied, after };
  }

  it('one instance however its parameters are spelled: every equivalent launch is refused while it runs', async () => {
    const first = await jobs.operator.launch(
      jobs.client,
      'copy',
      { source: 'src', target: 'dst3', from: 10, to: 300 },
      { chunkSize: 100 },
    );
    const spellings = fc.record(
      {
        source: fc.constantFrom('src', 'public.src'),
        target: fc.constantFrom('dst3', 'public.dst3'),
        mode: fc.constantFrom('insert'),
        keyColumn: fc.constantFrom('id'),
        columns: fc.constantFrom({ id: 'id', note: 'note' }, { note: 'note', id: 'id' }),
        conflictKey: fc.constantFrom('id', ['id']),
        from: fc.constantFrom(10, '10', '010', ' 10', '+10'),
        to: fc.constantFrom(300, '300', '0300', '300 '),
      },
      { requiredKeys: ['source', 'target', 'from', 'to'] },
    );
    await fc.assert(
      fc.asyncProperty(spellings, fc.integer({ min: 1, max: 1000 }), async (parameters, chunkSize) => {
        const error = await refusal(jobs.operator.launch(jobs.client, 'copy', parameters, { chunkSize }));
        assert.equal(error.code, 'CONFLICT', `${JSON.stringify(parameters)}: ${error.message}`);
        assert.deepEqual(error.details, { reason: 'JOB_EXECUTION_RUNNING', executionId: first.id });
      }),
      { numRuns: 60 },
    );
    const other = await jobs.operator.launch(
      jobs.client,
      'copy',
      { source: 'src', target: 'dst3', from: 10, to: 300, runId: 'again' },
      {},
    );
    assert.notEqual(other.instanceId, first.instanceId, 'a runId makes another instance, for a copy too');
    await jobs.operator.stop(jobs.client, other.id);

    const uploads = jobs.app.get(ImportUploads);
    const upload = (target: string, mode?: string) =>
      uploads.upload(
        jobs.client,
        { query: { target, ...(mode ? { mode } : {}) }, contentType: 'text/csv', contentEncoding: undefined },
        Readable.from([Buffer.from('id,note\n1,a\n')]),
      );
    const imported = await upload('dst3');
    for (const [target, mode] of [['public.dst3'], ['dst3', 'insert']]) {
      const error = await refusal(upload(target, mode));
      assert.equal(error.code, 'CONFLICT', error.message);
      assert.deepEqual(error.details, { reason: 'JOB_EXECUTION_RUNNING', executionId: imported.id });
    }
    await jobs.operator.stop(jobs.client, imported.id);
    await jobs.operator.stop(jobs.client, first.id);
  });

  it('a refusal spells the tables as the launch did, whether they exist or not', async () => {
    for (const [target, said] of [
      ['src', 'src'],
      ['nosuch', 'nosuch'],
      ['public.nosuch', 'public.nosuch'],
    ]) {
      const error = await refusal(jobs.operator.launch(jobs.client, 'copy', { source: 'src', target }, {}));
      assert.equal(error.code, 'FORBIDDEN');
      assert.equal(error.message, `this client may not write ${said} (its targets)`);
    }
  });

  it("clients take turns for workers; one client's launches never run more than its limit at once", async () => {
    const clients = jobs.app.get(ClientService);
    const other = (await clients.authenticate((await clients.create({ name: 'other', targets: [] })).apiKey))!;
    const many = [];
    for (let n = 1; n <= 10; n++) many.push((await jobs.operator.launch(jobs.client, 'noop', { n }, {})).id);
    const one = (await jobs.operator.launch(other, 'noop', { n: 1 }, {})).id;
    const claims = [];
    for (let i = 0; i < 4; i++) claims.push((await jobs.leases.claimExecution('worker', 30_000))?.id ?? null);
    assert.deepEqual(claims, [many[0], one, many[1], null], 'in turn; then the first client is at its limit of 2');
    await jobs.db.query(
      `UPDATE batch.job_executions SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = 'worker'`,
    );
    await jobs.runAll();
    for (const id of many) assert.equal((await jobs.execution(id)).status, 'COMPLETED');
    assert.equal((await jobs.operator.get(other, one)).status, 'COMPLETED');
  });

  it("one client's thousand schedules due at once leave another's every-second schedule on time", async () => {
    const schedules = jobs.app.get(JobSchedules);
    await jobs.db.query(
      `INSERT INTO batch.job_schedules (name, job, cron, time_zone, parameters, options, client_id, next_tick_at)
       SELECT 'minutely-' || g, 'noop', '* * * * *', 'UTC', jsonb_build_object('n', g), '{}', $1,
              date_trunc('second', now())
         FROM generate_series(1, 999) g`,
      [jobs.client.id],
    );
    await schedules.put('minutely-1000', { job: 'noop', cron: '* * * * *', client: 'copier', parameters: { n: 1000 } });
    const over = await refusal(
      schedules.put('one-too-many', { job: 'noop', cron: '* * * * *', client: 'copier', parameters: { n: 1001 } }),
    );
    assert.equal(over.code, 'CONFLICT');
    assert.deepEqual(over.details, { reason: 'SCHEDULE_LIMIT_REACHED', limit: 1000 });
    await schedules.put('every-second', { job: 'noop', cron: '* * * * * *', client: 'other', parameters: { n: 0 } });
    const until = Date.now() + 3000;
    while (Date.now() < until) if ((await schedules.tick()) === 0) await new Promise((r) => setTimeout(r, 20));
    const late = await jobs.db.query<{ at: string; late_ms: number }>(
      `SELECT e.parameters->>'scheduledAt' AS at,
              extract(epoch FROM e.created_at - (e.parameters->>'scheduledAt')::timestamptz) * 1000 AS late_ms
         FROM batch.job_executions e JOIN batch.clients c ON c.id = e.client_id
        WHERE c.name = 'other' AND e.parameters ? 'scheduledAt' ORDER BY 1`,
    );
    assert.ok(late.length >= 2, `ticks launched: ${late.length}`);
    for (const tick of late)
      assert.ok(tick.late_ms < 1000, `the tick of ${tick.at} was launched ${tick.late_ms} ms late`);
    await jobs.db.query(`DELETE FROM batch.job_schedules`);
  });

  it('abandoning a failed execution whose instance completed since is a CONFLICT, not an error', async () => {
    const failed = await jobs.operator.launch(jobs.client, 'copy', { source: 'src', target: 'dst4', to: 10 }, {});
    await jobs.runAll();
    assert.equal((await jobs.execution(failed.id)).status, 'FAILED');
    await jobs.db.query(`ALTER TABLE dst4 DROP CONSTRAINT dst4_id_check`);
    const completed = await jobs.operator.restart(jobs.client, failed.id);
    await jobs.runAll();
    assert.equal((await jobs.execution(completed.id)).status, 'COMPLETED');
    const error = await refusal(jobs.operator.abandon(jobs.client, failed.id));
    assert.equal(error.code, 'CONFLICT', error.message);
    assert.deepEqual(error.details, { reason: 'JOB_INSTANCE_COMPLETE', executionId: completed.id });
    assert.equal((await jobs.execution(failed.id)).status, 'FAILED');
  });

  it('a client narrowed mid-copy: its execution fails at the next chunk, with the reason', async () => {
    const clients = jobs.app.get(ClientService);
    const { ended, copied, after } = await changedMidCopy('dst', () =>
      clients.update(jobs.client.id, { targets: ['public.dst2'] }),
    );
    assert.equal(ended.status, 'FAILED');
    assert.match(ended.exitStatus?.description ?? '', /FORBIDDEN: the client may not write dst \(its targets\)/);
    assert.equal(after, copied, 'nothing written after the change was answered');
    assert.ok(after < 20000);
  });

  it('a client revoked mid-copy: its execution fails at the next chunk, with the reason', async () => {
    const clients = jobs.app.get(ClientService);
    const { ended, copied, after } = await changedMidCopy('dst2', () => clients.revoke(jobs.client.id));
    assert.equal(ended.status, 'FAILED');
    assert.match(ended.exitStatus?.description ?? '', /FORBIDDEN: the client was revoked/);
    assert.equal(after, copied, 'nothing written after the revocation was answered');
  });
});
