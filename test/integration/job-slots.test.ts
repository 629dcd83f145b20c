import assert from 'node:assert/strict';
import { Injectable, Module } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import { BatchJob, job, partitioned, tasklet } from '../../src/services/jobs';
import { Hold, JobRunner } from '../../src/services/jobs/job-runner.service';
import { JobWorker } from '../../src/services/jobs/job-worker.service';
import { Jobs, startJobs } from '../support/jobs-app';
import { eventually } from '../support/service-process';
import { signal } from '../support/signal';

/** Partition 1 runs until the test opens the gate; the test learns when it has begun. */
const gated = () => ({ begun: signal(), open: signal() });
let gate = gated();
/** Runs of the gated job's step after its partitions; its partitions' chunks, by name. */
let afterSplit = 0;
const partitionChunks: string[] = [];
/** The held job runs until the test opens its gate. */
const held = gated();

@BatchJob()
@Injectable()
class GatedJob {
  readonly definition = job('gated')
    .describe('two partitions, the first held at a gate')
    .step(
      'split',
      partitioned(
        async () => [
          { name: '1', context: {} },
          { name: '2', context: {} },
        ],
        tasklet(async (_tx, step) => {
          partitionChunks.push(step.partition!);
          if (step.partition === '1') {
            gate.begun.resolve();
            await gate.open.promise;
          }
          return 'FINISHED';
        }),
      ),
    )
    .step(
      'after',
      tasklet(async () => ((afterSplit += 1), 'FINISHED')),
    )
    .build();
}

@BatchJob()
@Injectable()
class HeldJob {
  readonly definition = job('held')
    .describe('runs until the test opens its gate')
    .step(
      'wait',
      tasklet(async () => {
        held.begun.resolve();
        await held.open.promise;
        return 'FINISHED';
      }),
    )
    .build();
}

@BatchJob()
@Injectable()
class NoteJob {
  readonly definition = job('note')
    .describe('writes a note')
    .step(
      'write',
      tasklet(async (tx) => (await tx.query(`INSERT INTO notes VALUES ('written')`), 'FINISHED')),
    )
    .build();
}

/** While `down`, its step cannot reach a database: the first open, then every chunk, lose their connection. */
const outage = { down: true, opens: 0, chunks: 0 };
const lost = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });

@BatchJob()
@Injectable()
class UnreachableJob {
  readonly definition = job('unreachable')
    .describe('reads a database that is down for a while')
    .step(
      'read',
      tasklet(
        async () => {
          outage.chunks += 1;
          if (outage.down) throw lost();
          return 'FINISHED';
        },
        async () => {
          outage.opens += 1;
          if (outage.opens === 1) throw lost();
        },
      ),
    )
    .build();
}

@Module({ providers: [GatedJob, HeldJob, NoteJob, UnreachableJob] })
class SlotJobsModule {}

/** A worker process's job slots (BATCH_JOB_CONCURRENCY), its job worker running as in the service. */
describe('job slots', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.notes'] }, [SlotJobsModule], {
      BATCH_ROLE: 'worker',
      BATCH_JOB_CONCURRENCY: '1',
      BATCH_JOB_POLL_INTERVAL: '100',
    });
    await jobs.db.query(`CREATE TABLE notes (note text)`);
  });
  const ended = (id: string) =>
    eventually(async () => {
      const execution = await jobs.execution(id);
      return ['COMPLETED', 'FAILED'].includes(execution.status) ? execution : undefined;
    }, 20_000);
  after(() => jobs.close());

  it('an execution waiting for a partition another worker runs leaves its slot to other work', async () => {
    const gated = await jobs.operator.launch(jobs.client, 'gated', {}, {});
    await gate.begun.promise; // its owner runs partition 1 in the one slot
    const second = await jobs.leases.claimPartition('worker-b', 60_000);
    assert.equal(second?.partition, '2', 'another worker holds partition 2');
    gate.open.resolve(); // partition 1 ends: the owner waits for partition 2

    const note = await jobs.operator.launch(jobs.client, 'note', {}, {});
    assert.equal((await ended(note.id)).exitStatus?.code, 'COMPLETED');
    assert.equal((await jobs.execution(gated.id)).status, 'STARTED', 'still waiting for partition 2');

    await jobs.app.get(JobRunner).runPartition('worker-b', second, new Hold(null));
    const done = await ended(gated.id);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(done.steps[0].status, 'COMPLETED');
  });

  it('an execution whose partitions ended while it waited goes on only in a free slot', async () => {
    gate = gated();
    afterSplit = 0;
    const split = await jobs.operator.launch(jobs.client, 'gated', { runId: 'slots' }, {});
    await gate.begun.promise;
    const second = await jobs.leases.claimPartition('worker-b', 60_000);
    assert.equal(second?.partition, '2');
    gate.open.resolve(); // the owner waits for partition 2, its slot free
    const other = await jobs.operator.launch(jobs.client, 'held', {}, {});
    await held.begun.promise; // and the held job runs in it

    await jobs.app.get(JobRunner).runPartition('worker-b', second, new Hold(null));
    await eventually(async () =>
      (await jobs.execution(split.id)).steps[0]?.status === 'COMPLETED' ? true : undefined,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // five polls of the owner, ten of the worker
    const ranMeanwhile = afterSplit;
    held.open.resolve();
    assert.equal(ranMeanwhile, 0, 'the next step waits for a slot');
    assert.equal((await ended(other.id)).status, 'COMPLETED');
    const done = await ended(split.id);
    assert.deepEqual(
      done.steps.map((s) => [s.name, s.status]),
      [
        ['split', 'COMPLETED'],
        ['after', 'COMPLETED'],
      ],
    );
    assert.equal(afterSplit, 1);
  });

  it('an execution that cannot reach a database is handed back for its back-off, its slot left to other work', async () => {
    const unreachable = await jobs.operator.launch(jobs.client, 'unreachable', {}, {});
    await eventually(async () => (outage.chunks >= 3 ? true : undefined)); // opened at its second claim, then chunks
    const step = () =>
      jobs.db
        .query<{ outages: number }>(`SELECT outages FROM batch.step_executions WHERE job_execution_id = $1`, [
          unreachable.id,
        ])
        .then(([row]) => row.outages);
    // the try that failed hands the execution back in a transaction of its own, after the chunk counted above threw
    const paused = await eventually(
      async () => {
        const [row] = await jobs.db.query<{ owner: string | null; ahead: boolean }>(
          `SELECT lease_owner AS owner, lease_until > now() AS ahead FROM batch.job_executions WHERE id = $1`,
          [unreachable.id],
        );
        return row.owner === null ? row : undefined;
      },
      10_000,
      'no worker holds it between tries',
    );
    assert.equal(paused.owner, null, 'no worker holds it between tries');
    assert.equal(paused.ahead, true, 'nor claims it before its back-off ends');
    assert.ok((await step()) >= 2, "its outages in a row are the step's, counted across its claims");

    const note = await jobs.operator.launch(jobs.client, 'note', { runId: 'while unreachable' }, {});
    assert.equal((await ended(note.id)).exitStatus?.code, 'COMPLETED', 'the one slot ran another job meanwhile');
    assert.equal((await jobs.execution(unreachable.id)).status, 'STARTED', 'it waits: no failure');

    outage.down = false;
    const done = await ended(unreachable.id);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(outage.opens, outage.chunks + 1, 'each try after the open that failed a claim of its own');
    assert.equal(await step(), 0, 'the chunk that committed ended the outage');
  });

  // last: it shuts the job worker down
  it('an execution stopped while handed back ends its steps, and a partition another worker holds writes no more', async () => {
    gate = gated();
    partitionChunks.length = 0;
    const split = await jobs.operator.launch(jobs.client, 'gated', { runId: 'stopped' }, {});
    await gate.begun.promise;
    const second = await jobs.leases.claimPartition('worker-b', 60_000);
    assert.equal(second?.partition, '2');
    const shutdown = jobs.app.get(JobWorker).stop(); // hands the execution back at the partition's end
    gate.open.resolve();
    await shutdown;
    await jobs.operator.stop(jobs.client, split.id); // STOPPING, held by no worker

    const reclaimed = await jobs.leases.claimExecution('worker-c', 60_000);
    assert.equal(reclaimed?.id, split.id);
    await jobs.app.get(JobRunner).runExecution('worker-c', reclaimed, new Hold(reclaimed.id));
    await jobs.app.get(JobRunner).runPartition('worker-b', second, new Hold(null));

    assert.deepEqual(partitionChunks, ['1'], 'partition 2 wrote nothing after its execution ended');
    const stopped = await jobs.execution(split.id);
    assert.equal(stopped.status, 'STOPPED');
    const open = await jobs.db.query(
      `SELECT name, partition, status FROM batch.step_executions
        WHERE job_execution_id = $1 AND status IN ('STARTING', 'STARTED', 'STOPPING')`,
      [split.id],
    );
    assert.deepEqual(open, [], 'no step or partition left open');
  });
});
