import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
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

/** A worker that claims `claimable` executions (one), whose reaps and renewals fail while `database.down`; its reaps and warnings counted. */
function workerWithOutage(database: { down: boolean; reaps: number; warnings?: string[] }, claimable = 1) {
  const lost = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const leases = {
    reapExpired: async () => {
      database.reaps += 1;
      if (database.down) throw lost();
      return { ended: [], partitions: [] };
    },
    renew: async () => {
      if (database.down) throw lost();
      return { executions: new Map(), steps: new Set() };
    },
    claimExecution: async () => (claimable-- > 0 ? ({ id: '1' } as ExecutionRow) : null),
    claimPartition: async () => null,
  } as unknown as JobLeases;
  const runner = { runExecution: () => new Promise(() => {}) } as unknown as JobRunner; // runs until the test ends
  const config = loadConfig({ BATCH_JOB_LEASE_MS: '1000', BATCH_JOB_POLL_INTERVAL: '60000' });
  const noop = {} as never;
  const worker = new JobWorker(config, leases, runner, noop, noop, noop, new JobWakeup()) as unknown as {
    turn(): Promise<boolean>;
    afterFailure(): void;
    renew(): Promise<void>;
    logger: { warn(message: string): void };
  };
  worker.logger = { warn: (message) => void database.warnings?.push(message) };
  return worker;
}

describe('JobWorker: leases after an outage of the database', () => {
  it('reaps none for a lease after a turn failed: live workers renew first', async () => {
    const database = { down: true, reaps: 0 };
    const worker = workerWithOutage(database);
    await assert.rejects(worker.turn());
    worker.afterFailure(); // as the loop does when a turn fails
    database.down = false;
    await worker.turn();
    assert.equal(database.reaps, 1, 'no reap right after the outage');
    await delay(1_000);
    await worker.turn();
    assert.equal(database.reaps, 2, 'reaps again a lease later');
  });

  it('reaps none for a lease after a renewal failed', async () => {
    const database = { down: false, reaps: 0, warnings: [] as string[] };
    const worker = workerWithOutage(database);
    await worker.turn(); // reaps, and claims an execution it holds
    database.down = true;
    await worker.renew();
    database.down = false;
    await worker.turn();
    assert.equal(database.reaps, 1, 'no reap right after the renewal failed');
    assert.equal(database.warnings.length, 1, 'the lease it could not renew is told');
  });

  it('reaps none for a lease after an outage it held nothing through, between two turns a minute apart', async () => {
    const database = { down: true, reaps: 0, warnings: [] as string[] };
    const worker = workerWithOutage(database, 0);
    await worker.renew(); // its renewals go on, every quarter of a lease, while it waits for its next turn
    database.down = false;
    await worker.turn();
    assert.equal(database.reaps, 0, 'no reap right after the outage');
    assert.deepEqual(database.warnings, [], 'holding nothing, it lost nothing to tell of');
  });
});
