import assert from 'node:assert/strict';
import { Injectable, Module } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import { BatchJob, job, partitioned, tasklet } from '../../src/services/jobs';
import { Hold, JobRunner } from '../../src/services/jobs/job-runner.service';
import { Jobs, startJobs } from '../support/jobs-app';
import { eventually } from '../support/service-process';

function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Partition 1 runs until the test opens the gate; the test learns when it has begun. */
const gate = { begun: signal(), open: signal() };

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
          if (step.partition === '1') {
            gate.begun.resolve();
            await gate.open.promise;
          }
          return 'FINISHED';
        }),
      ),
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

@Module({ providers: [GatedJob, NoteJob] })
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
  after(() => jobs.close());

  it('an execution waiting for a partition another worker runs leaves its slot to other work', async () => {
    const gated = await jobs.operator.launch(jobs.client, 'gated', {}, {});
    await gate.begun.promise; // its owner runs partition 1 in the one slot
    const second = await jobs.leases.claimPartition('worker-b', 60_000);
    assert.equal(second?.partition, '2', 'another worker holds partition 2');
    gate.open.resolve(); // partition 1 ends: the owner waits for partition 2

    const note = await jobs.operator.launch(jobs.client, 'note', {}, {});
    const noted = await eventually(async () => {
      const execution = await jobs.execution(note.id);
      return execution.status === 'COMPLETED' ? execution : undefined;
    }, 10_000);
    assert.equal(noted.exitStatus?.code, 'COMPLETED');
    assert.equal((await jobs.execution(gated.id)).status, 'STARTED', 'still waiting for partition 2');

    await jobs.app.get(JobRunner).runPartition('worker-b', second, new Hold(null));
    const ended = await eventually(async () => {
      const execution = await jobs.execution(gated.id);
      return execution.status === 'COMPLETED' ? execution : undefined;
    }, 10_000);
    assert.equal(ended.steps[0].status, 'COMPLETED');
  });
});
