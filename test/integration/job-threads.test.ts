import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Injectable, Module } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import type { PoolClient } from 'pg';
import { BatchJob, chunk, job, pagingReader, threadProcessor } from '../../src/services/jobs';
import { Jobs, startJobs } from '../support/jobs-app';

interface Output {
  id: number;
  name: string;
  thread: number;
}

@BatchJob()
@Injectable()
class ThreadsJob {
  readonly definition = job('threads')
    .describe('hashes names in a pool of two threads')
    .option('skipLimit', { type: 'integer', description: 'items skipped at most' })
    .step(
      'hash',
      chunk<{ id: number; name: string }, Output>({
        chunkSize: 10,
        concurrency: 2,
        reader: pagingReader({ table: 'inputs', key: 'id' }),
        processor: threadProcessor({ module: join(__dirname, '..', 'support', 'cpu-processor.js'), threads: 2 }),
        writer: async (tx: PoolClient, outputs) => {
          await tx.query(`INSERT INTO outputs SELECT * FROM unnest($1::int[], $2::text[], $3::int[])`, [
            outputs.map((o) => o.id),
            outputs.map((o) => o.name),
            outputs.map((o) => o.thread),
          ]);
        },
      }),
    )
    .build();
}

@Module({ providers: [ThreadsJob] })
class ThreadsModule {}

/** threadProcessor: a CPU-bound processor in a pool of worker threads. */
describe('job toolkit: the thread processor', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.outputs'] }, [ThreadsModule]);
    await jobs.db.query(`
      CREATE TABLE inputs (id int PRIMARY KEY, name text NOT NULL);
      INSERT INTO inputs SELECT g, 'n' || g FROM generate_series(1, 30) g;
      CREATE TABLE outputs (id int PRIMARY KEY, name text NOT NULL, thread int NOT NULL, at serial);`);
  });
  after(() => jobs.close());

  it('processes in worker threads, writes in the order read, skips what the thread refused with its code', async () => {
    const launched = await jobs.operator.launch(jobs.client, 'threads', {}, { skipLimit: 1 });
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    const outputs = await jobs.db.query<{ id: number; name: string; thread: number }>(
      `SELECT id, name, thread FROM outputs ORDER BY at`,
    );
    assert.deepEqual(
      outputs.map((o) => o.id),
      Array.from({ length: 30 }, (_, i) => i + 1).filter((id) => id !== 13),
    );
    assert.ok(
      outputs.every((o) => o.thread !== 0 && /^[0-9a-f]{8}$/.test(o.name)),
      'each item hashed in a thread',
    );
    const [reject] = await jobs.db.query<{ code: string; message: string }>(
      `SELECT code, message FROM batch.job_rejects WHERE job_execution_id = $1`,
      [launched.id],
    );
    assert.deepEqual(reject, { code: 'UNLUCKY', message: '13 is refused' });
  });
});
