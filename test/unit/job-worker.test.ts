import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/app-config';
import type { Hold, JobRunner } from '../../src/services/jobs/job-runner.service';
import { JobWakeup } from '../../src/services/jobs/job-signals';
import { JobWorker } from '../../src/services/jobs/job-worker.service';
import type { JobLeases } from '../../src/services/jobs/repository/job-leases';
import type { ExecutionRow } from '../../src/services/jobs/repository/job-rows';

describe('JobWorker: shutdown', () => {
  it('hands back what a turn in flight claims after shutdown began, and claims nothing more', async () => {
    let answerClaim: (row: ExecutionRow | null) => void = () => {};
    let claimed = () => {};
    const claiming = new Promise<void>((resolve) => (claimed = resolve));
    const claims: string[] = [];
    const leases = {
      reapExpired: async () => ({ ended: [], partitions: [] }),
      claimExecution: () => {
        claims.push('execution');
        if (claims.length > 1) return Promise.resolve(null);
        claimed();
        return new Promise<ExecutionRow | null>((resolve) => (answerClaim = resolve));
      },
      claimPartition: async () => (claims.push('partition'), null),
    } as unknown as JobLeases;
    const handedBack: boolean[] = [];
    const runner = {
      runExecution: async (_owner: string, _row: ExecutionRow, hold: Hold) => void handedBack.push(hold.handBack),
    } as unknown as JobRunner;
    const config = loadConfig({ BATCH_JOB_CONCURRENCY: '2', BATCH_JOB_POLL_INTERVAL: '60000' });
    const noop = {} as never;
    const worker = new JobWorker(config, leases, runner, noop, noop, noop, new JobWakeup());

    worker.onApplicationBootstrap();
    await claiming; // the turn waits for its claim's answer
    const stopped = worker.stop();
    answerClaim({ id: '1' } as ExecutionRow);
    await stopped;

    assert.deepEqual(handedBack, [true], 'run only to be handed back at once');
    assert.deepEqual(claims, ['execution'], 'no claim after shutdown began, though a slot was free');
  });
});
