import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ImportUploads } from '../../src/services/imports/import-uploads.service';
import { ClientService } from '../../src/services/access/client.service';
import { BatchError } from '../../src/services/batch-error';
import { Jobs, startJobs } from '../support/jobs-app';

/** What a client's launches may and may not do to the job instances, grants and other clients. */
describe('jobs: grants at every chunk, instances by meaning, ends that stay ended', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.dst', 'public.dst2', 'dst3', 'dst4'], sources: ['public.src'] });
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
    assert.match(ended.exitStatus?.description ?? '', /FORBIDDEN: .*public\.dst/);
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
