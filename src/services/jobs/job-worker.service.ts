import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { AppConfig } from '../../config/app-config';
import { logReason } from '../storage/database-error';
import { WorkerLoop } from '../worker-loop';
import { JobOperator } from './job-operator.service';
import { JobRegistry } from './job-registry.service';
import { JobLeases } from './repository/job-leases';
import { Hold, JobRunner, leaseMs } from './job-runner.service';
import { JobSignals, JobWakeup } from './job-signals';

/**
 * A worker process's share of the jobs: runs up to BATCH_JOB_CONCURRENCY executions and partitions at a time, claimed
 * with SKIP LOCKED, any worker any one. What it holds it holds by a lease, renewed four times per lease (each renewal
 * good for three quarters of BATCH_JOB_LEASE_MS), so that two renewals may be late before it runs out, and a worker
 * that died is seen within the lease: its executions end FAILED and are launched again within their job's start
 * limit, its partitions go to another. At shutdown (SIGTERM) it hands what it runs back at the next chunk boundary,
 * for another worker to continue, as the same execution.
 */
@Injectable()
export class JobWorker extends WorkerLoop implements OnApplicationBootstrap {
  protected readonly logger = new Logger(JobWorker.name);
  /** This process, as the leases name it. */
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly holds = new Map<Hold, Promise<void>>();
  private renewals: NodeJS.Timeout | null = null;
  /** Set as shutdown begins: nothing more is claimed, and what a turn in flight still claims is handed back. */
  private shuttingDown = false;
  /**
   * When a renewal or a turn of this worker last failed (the database down, most often). The leases that ran out
   * meanwhile may be those of live workers that could not renew either: none is reaped until a lease's length later,
   * when every live worker has renewed (four times a lease). Renewals go to the database every quarter of a lease even
   * when this worker holds nothing, so that it sees any outage long enough to end a live worker's lease, however long
   * it waits between turns.
   */
  private failedAt = -Infinity;

  constructor(
    private readonly config: AppConfig,
    private readonly leases: JobLeases,
    private readonly runner: JobRunner,
    private readonly operator: JobOperator,
    private readonly signals: JobSignals,
    private readonly registry: JobRegistry,
    private readonly jobWakeup: JobWakeup,
  ) {
    super(jobWakeup, config.jobs.pollIntervalMs);
  }

  onApplicationBootstrap(): void {
    this.renewals = setInterval(() => void this.renew(), this.config.jobs.leaseMs / 4);
    super.onApplicationBootstrap();
  }

  /** Hands everything back at the next chunk boundary, waits for that, then stops. */
  async stop(): Promise<void> {
    this.shuttingDown = true;
    for (const hold of this.holds.keys()) hold.handBack = true;
    await super.stop();
    await Promise.all(this.holds.values());
    if (this.renewals) clearInterval(this.renewals);
    this.renewals = null;
  }

  protected async turn(): Promise<boolean> {
    await this.reap();
    while (!this.shuttingDown && this.working() < this.config.jobs.concurrency) {
      const execution = await this.leases.claimExecution(this.owner, leaseMs(this.config));
      if (execution) {
        this.hold(new Hold(execution.id), (hold) => this.runner.runExecution(this.owner, execution, hold));
        continue;
      }
      const partition = await this.leases.claimPartition(this.owner, leaseMs(this.config));
      if (!partition) break;
      this.hold(new Hold(null), (hold) => this.runner.runPartition(this.owner, partition, hold));
    }
    return false;
  }

  /** The holds that take a slot: all but executions waiting for their partitions. */
  private working(): number {
    return [...this.holds.keys()].filter((hold) => !hold.waiting).length;
  }

  protected afterFailure(): void {
    this.failedAt = Date.now();
  }

  /** Ends what dead workers held, launches it again within its start limit, and frees their partitions. */
  private async reap(): Promise<void> {
    if (Date.now() - this.failedAt < this.config.jobs.leaseMs) return;
    const { ended, partitions } = await this.leases.reapExpired((tx, lost) => this.operator.restartLost(tx, lost));
    for (const { job } of [...ended, ...partitions]) this.registry.notify(job, 'onLeaseLost', job);
    if (ended.length > 0) this.signals.finished();
    if (ended.length > 0 || partitions.length > 0) this.jobWakeup.notify();
  }

  private hold(hold: Hold, run: (hold: Hold) => Promise<void>): void {
    hold.handBack = this.shuttingDown; // claimed by a turn that was in flight as shutdown began
    const done = run(hold)
      .catch((error: unknown) => this.logger.error(`job work stopped: ${logReason(error)}`))
      .finally(() => {
        this.holds.delete(hold);
        if (!hold.handBack) this.jobWakeup.notify(); // a slot is free
      });
    this.holds.set(hold, done);
  }

  /**
   * Renews every lease this worker holds (none, as a sign of the database's life: failedAt); what was not renewed was
   * lost, and is given up at its next chunk.
   */
  private async renew(): Promise<void> {
    const renewed = [...this.holds.keys()].map((hold) => ({ hold, steps: [...hold.steps] }));
    const executions = renewed.flatMap(({ hold }) => (hold.executionId ? [hold.executionId] : []));
    const steps = renewed.flatMap(({ steps }) => steps);
    try {
      const held = await this.leases.renew(this.owner, leaseMs(this.config), executions, steps);
      for (const { hold, steps } of renewed) hold.renewed(steps, held);
    } catch (error) {
      this.failedAt = Date.now();
      // holding nothing, nothing is lost: the loop's own turns report the outage
      if (renewed.length > 0) this.logger.warn(`could not renew job leases: ${logReason(error)}`);
    }
  }
}
