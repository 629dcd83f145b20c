import { Injectable, Logger } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import type { JobGrants, JobStatus } from '../../interfaces/job.interfaces';
import { AppConfig } from '../../config/app-config';
import { ClientService } from '../access/client.service';
import { Database } from '../storage/database';
import { isConcurrencyConflict, isConnectionError, logReason } from '../storage/database-error';
import { backOffMs } from '../worker-loop';
import { BatchError } from '../batch-error';
import {
  JobDefinition,
  JobRun,
  JobStep,
  nextStep,
  PartitionedStep,
  RepeatStatus,
  StepRun,
  TaskletStep,
} from './job-definition';
import { SkipLimitExceeded, skipLimitDescription } from './job-skips';
import { ChunkContext } from './chunk-context';
import { withDefaults } from './job-parameters';
import { JobRegistry } from './job-registry.service';
import { Ending, ExecutionRow, isRunning, LeaseLost, StepRow } from './repository/job-rows';
import { JobLeases } from './repository/job-leases';
import { resumedContext, StepProgress } from './repository/job-progress';
import { PartitionStatus, SkippedAtEnd, StepExecutions } from './repository/step-executions';
import { JobSignals, JobWakeup } from './job-signals';
import { ChunkRetry } from './toolkit/retry';

/** How often the owner of a partitioned step looks whether its partitions have ended. */
const PARTITION_POLL_MS = 200;
/** Times a chunk that met other transactions (deadlock, serialization failure) is tried again before the step fails. */
const CONFLICT_RETRIES = 3;

/**
 * What a worker holds (an execution it runs, or a partition), kept current by its lease renewals (JobWorker):
 * `handBack` at the worker's shutdown, `stopping` when a stop was requested, and what it lost.
 */
export class Hold {
  handBack = false;
  stopping = false;
  lost = false;
  /**
   * An execution waiting for partitions that other holds (of this worker or another) run: it takes no slot of
   * BATCH_JOB_CONCURRENCY meanwhile, for a partition or another execution to use; when they have ended it is handed
   * back, for its flow to go on in a slot (runPartitioned).
   */
  waiting = false;
  readonly steps = new Set<string>();
  readonly lostSteps = new Set<string>();

  constructor(readonly executionId: string | null) {}

  /**
   * What a renewal of this hold's leases found, where `steps` are the steps it held as the renewal began: its
   * execution's status (none: lost), and which of those steps are no longer held. A step taken while the renewal ran
   * was not in it, and is not lost for that.
   */
  renewed(steps: readonly string[], held: { executions: Map<string, JobStatus>; steps: Set<string> }): void {
    if (this.executionId) {
      const status = held.executions.get(this.executionId);
      if (status === undefined) this.lost = true;
      this.stopping = status === 'STOPPING';
    }
    for (const step of steps) if (!held.steps.has(step) && this.steps.has(step)) this.lostSteps.add(step);
  }
}

/**
 * Runs what a worker claimed: an execution's flow of steps (as its owner), or a partition of a partitioned step. A
 * step is its tasklet run again and again, each run one transaction guarded by the lease that also saves the step's
 * position, counters and rejects (StepExecutions.saveChunk): a chunk is committed with its position or not at all,
 * so whoever continues the step, after a restart, a hand-back or a lost lease, neither repeats nor misses one.
 */
@Injectable()
export class JobRunner {
  private readonly logger = new Logger(JobRunner.name);
  private readonly grants = new WeakMap<JobRun, Promise<JobGrants>>();

  constructor(
    private readonly config: AppConfig,
    private readonly db: Database,
    private readonly leases: JobLeases,
    private readonly steps: StepExecutions,
    private readonly registry: JobRegistry,
    private readonly clients: ClientService,
    private readonly signals: JobSignals,
    private readonly wakeup: JobWakeup,
  ) {}

  /** Runs an execution this worker (`owner`) claimed until it ends, is handed back, or the lease is lost. */
  async runExecution(owner: string, row: ExecutionRow, hold: Hold): Promise<void> {
    const definition = this.registry.get(row.job);
    const run = definition ? jobRun(definition, row) : null;
    try {
      const ending = await this.decide(owner, definition, row, run, hold);
      if (ending === null) {
        await this.leases.handBack(owner, row.id, []);
        this.signals.wake();
        return;
      }
      await this.leases.endExecution(row.id, owner, ending);
      this.signals.finished();
      if (run) this.registry.notify(row.job, 'afterJob', run, ending);
    } catch (error) {
      if (error instanceof LeaseLost || hold.lost) return;
      // the database is gone or the service failed: the lease runs out, and the execution ends FAILED with that
      this.logger.error(`execution ${row.id} (${row.job}) stopped: ${logReason(error)}`);
    }
  }

  /** How the execution ends, or null when it was handed back. */
  private async decide(
    owner: string,
    definition: JobDefinition | undefined,
    row: ExecutionRow,
    run: JobRun | null,
    hold: Hold,
  ): Promise<Ending | null> {
    if (!definition || !run) return failed(`no job named ${row.job} is defined in this version of the service`);
    if (row.status === 'STOPPING') return { status: 'STOPPED', code: 'STOPPED', description: null };
    const refused = await this.clients.missingGrant(row.client_id, await this.grantsOf(run));
    if (refused) return failed(`FORBIDDEN: ${refused}`);
    if (row.first_start) this.registry.notify(row.job, 'beforeJob', run);
    return this.runFlow(owner, definition, row, run, hold);
  }

  /** The job's steps from the first, each leading to the next by its exit code (JobStep.transitions). */
  private async runFlow(
    owner: string,
    definition: JobDefinition,
    row: ExecutionRow,
    run: JobRun,
    hold: Hold,
  ): Promise<Ending | null> {
    const visited = new Set<string>();
    let step = definition.steps[0];
    for (;;) {
      if (visited.has(step.name)) return failed(`the flow came back to step ${step.name}`);
      visited.add(step.name);
      const ending = await this.runStep(owner, step, row, run, hold);
      if (ending === null) return null;
      if (ending.status === 'STOPPED') return { status: 'STOPPED', code: 'STOPPED', description: ending.description };
      const next = nextStep(definition, step, ending.code, ending.status);
      if ('to' in next) {
        step = definition.steps.find((s) => s.name === next.to)!;
        continue;
      }
      if ('fail' in next) {
        const code = ending.code === 'COMPLETED' || ending.code === 'COMPLETED_WITH_SKIPS' ? 'FAILED' : ending.code;
        return { status: 'FAILED', code, description: ending.description ?? `step ${step.name} exited ${ending.code}` };
      }
      if (!STANDARD_CODES.includes(ending.code)) return { status: 'COMPLETED', code: ending.code, description: null };
      const skipped = await this.steps.hasSkips(row.id);
      return { status: 'COMPLETED', code: skipped ? 'COMPLETED_WITH_SKIPS' : 'COMPLETED', description: null };
    }
  }

  /**
   * A step of the flow: its ending when it ended in this execution already (before a hand-back) or completed in an
   * earlier one of the instance (not run again); else run, from where the instance's last run of it stopped.
   */
  private async runStep(
    owner: string,
    step: JobStep,
    row: ExecutionRow,
    run: JobRun,
    hold: Hold,
  ): Promise<Ending | null> {
    let current = await this.steps.step(row.id, step.name);
    if (current && !isRunning(current.status)) return endingOf(current);
    let prior: StepRow | null = null;
    if (current) await this.steps.takeStep(current, owner);
    else {
      prior = await this.steps.priorStep(row.instance_id, row.id, step.name);
      if (prior?.status === 'COMPLETED') return endingOf(prior);
      const resumed = step.definition.kind === 'tasklet' ? resumedContext(prior?.execution_context ?? {}) : {};
      current = await this.steps.startStep(row.id, step.name, owner, resumed);
    }
    hold.steps.add(current.id);
    try {
      return step.definition.kind === 'tasklet'
        ? await this.runTasklet(owner, current, step.definition, run, hold)
        : await this.runPartitioned(owner, current, step.definition, run, hold, prior);
    } finally {
      hold.steps.delete(current.id);
    }
  }

  /**
   * A partitioned step, as its execution's owner: makes the partitions (on a restart, the last run's unfinished ones,
   * from where they stopped), runs those it can claim, and ends the step once every partition has ended; null (handed
   * back) where it waited for partitions out of its slot meanwhile.
   */
  private async runPartitioned(
    owner: string,
    step: StepRow,
    definition: PartitionedStep,
    run: JobRun,
    hold: Hold,
    prior: StepRow | null,
  ): Promise<Ending | null> {
    if (!step.execution_context.partitioned) {
      const partitions = prior?.execution_context.partitioned
        ? (await this.steps.unfinishedPartitions(prior)).map((p) => ({ ...p, context: resumedContext(p.context) }))
        : (await definition.partitions(run)).map(({ name, context, size }) => ({
            name,
            context: size ? { ...context, progress: { ...size, done: 0, base: 0 } satisfies StepProgress } : context,
          }));
      await this.steps.createPartitions(step, owner, partitions);
      this.signals.wake();
    }
    try {
      for (;;) {
        if (hold.handBack) return await this.handBack(owner, step);
        if (hold.lost) throw new LeaseLost();
        if (hold.stopping) await this.steps.stopOpenPartitions(step);
        else if (!hold.waiting) {
          // runs its partitions itself while some are unclaimed; once it waited, those freed later go to a slot
          const partition = await this.leases.claimPartition(owner, leaseMs(this.config), run.id);
          if (partition) {
            await this.runClaimedPartition(owner, partition, definition.step, run, hold);
            continue;
          }
        }
        const partitions = await this.steps.partitionStatuses(step);
        if (partitions.every(({ status }) => !isRunning(status))) {
          const ending = partitionsEnding(partitions);
          await this.steps.endStep(step, owner, ending);
          // an owner that left its slot goes on only once claimed again through one, as after a hand-back
          return hold.waiting ? null : ending;
        }
        if (!hold.waiting) {
          hold.waiting = true;
          this.wakeup.notify(); // its slot is free
        }
        await delay(PARTITION_POLL_MS);
      }
    } finally {
      hold.waiting = false;
    }
  }

  /** Runs a partition this worker claimed, of an execution another worker (or this one) owns. */
  async runPartition(owner: string, partition: StepRow, hold: Hold): Promise<void> {
    try {
      const row = await this.leases.executionOf(partition.job_execution_id);
      const definition = this.registry.get(row.job);
      const step = definition?.steps.find((s) => s.name === partition.name)?.definition;
      if (!definition || step?.kind !== 'partitioned') {
        await this.steps.endStep(partition, owner, failed(`no partitioned step ${partition.name} in ${row.job}`));
        return;
      }
      await this.runClaimedPartition(owner, partition, step.step, jobRun(definition, row), hold);
    } catch (error) {
      if (!(error instanceof LeaseLost)) this.logger.error(`partition ${partition.id} stopped: ${logReason(error)}`);
    }
  }

  private async runClaimedPartition(
    owner: string,
    partition: StepRow,
    definition: TaskletStep,
    run: JobRun,
    hold: Hold,
  ): Promise<void> {
    hold.steps.add(partition.id);
    try {
      await this.runTasklet(owner, partition, definition, run, hold);
    } catch (error) {
      if (!(error instanceof LeaseLost) || hold.lost) throw error;
    } finally {
      hold.steps.delete(partition.id);
      hold.lostSteps.delete(partition.id);
    }
  }

  /**
   * A tasklet step (or partition), opened, then chunk after chunk until it says FINISHED, a stop was requested, the
   * worker hands it back, or a chunk fails: a lost connection pauses the step (see pause), a conflict with other
   * transactions is tried again, anything else fails the step.
   */
  private async runTasklet(
    owner: string,
    row: StepRow,
    definition: TaskletStep,
    run: JobRun,
    hold: Hold,
  ): Promise<Ending | null> {
    const step = new ChunkContext(run, row, this.registry);
    this.registry.notify(run.job, 'beforeStep', step);
    let opened = !definition.open;
    let attempts = 0;
    let outages = row.outages;
    for (;;) {
      if (hold.handBack) return this.handBack(owner, row);
      if (hold.lost || hold.lostSteps.has(row.id)) throw new LeaseLost();
      let status: RepeatStatus | 'STOP';
      try {
        if (!opened) {
          await definition.open!(step);
          await this.steps.saveContext(row, owner, step.context);
          step.committed();
          opened = true;
        }
        status = await this.chunk(owner, row, definition, step);
        attempts = 0;
        outages = 0;
      } catch (error) {
        const skipped = error instanceof SkipLimitExceeded ? step.skips() : undefined;
        step.rolledBack();
        if (error instanceof LeaseLost) throw error;
        if (error instanceof ChunkRetry) {
          // a chunk step's retry, waited for with no transaction open
          await this.steps.countRollback(row, owner);
          await delay(error.delayMs);
          continue;
        }
        if (isConnectionError(error)) {
          outages += 1;
          const pause = { ms: backOffMs(this.config.jobs.pollIntervalMs, outages), outages };
          if (await this.pause(owner, row, pause)) return null;
          await delay(pause.ms);
          continue;
        }
        attempts += 1;
        await this.steps.countRollback(row, owner);
        if (isConcurrencyConflict(error) && attempts <= CONFLICT_RETRIES) continue;
        return this.endStep(owner, row, step, failed(this.failureOf(error, run)), skipped);
      }
      if (status === 'STOP')
        return this.endStep(owner, row, step, { status: 'STOPPED', code: 'STOPPED', description: null });
      if (status === 'FINISHED') {
        const code = step.exitCode ?? (step.skipped > 0 ? 'COMPLETED_WITH_SKIPS' : 'COMPLETED');
        return this.endStep(owner, row, step, { status: 'COMPLETED', code, description: null });
      }
    }
  }

  /**
   * One chunk: the guard (lease, stop), the tasklet, and what it did saved, in one transaction. Its commit does not
   * wait for the WAL to reach the disk (CHUNK_COMMIT): where the database crashes before it does, the chunk's rows are
   * lost together with the step's position saved with them, and the step goes on from the position before, so
   * nothing is lost or written twice. What ends a step or an execution, and what is notified, waits as usual.
   */
  private async chunk(
    owner: string,
    row: StepRow,
    definition: TaskletStep,
    step: ChunkContext,
  ): Promise<RepeatStatus | 'STOP'> {
    const grants = this.grantsOf(step.job);
    const status = await this.db.transaction(async (tx) => {
      if ((await this.steps.guardChunk(tx, row.id, owner)) === 'STOPPING') return 'STOP';
      const refused = await this.clients.missingGrant(step.job.clientId, await grants, tx);
      if (refused) throw new BatchError('FORBIDDEN', refused);
      const repeat = await definition.execute(tx, step);
      await this.steps.saveChunk(tx, row, step.counts, step.context, step.rejects);
      return repeat;
    }, CHUNK_COMMIT);
    if (status !== 'STOP') {
      this.registry.notify(step.job.job, 'afterChunk', step);
      for (const reject of step.rejects) this.registry.notify(step.job.job, 'onSkip', step, reject);
      step.committed();
    }
    return status;
  }

  /** The tables a run reads and writes, worked out once per run: its grants are checked again at every chunk. */
  private grantsOf(run: JobRun): Promise<JobGrants> {
    let grants = this.grants.get(run);
    if (!grants) {
      grants = this.registry.get(run.job)!.grants(run.parameters);
      this.grants.set(run, grants);
    }
    return grants;
  }

  /** Ends a step; `skipped`: the rejects of a chunk that went past the skip limit, recorded with the ending. */
  private async endStep(
    owner: string,
    row: StepRow,
    step: StepRun,
    ending: Ending,
    skipped?: SkippedAtEnd,
  ): Promise<Ending> {
    await this.steps.endStep(row, owner, ending, skipped);
    this.registry.notify(step.job.job, 'afterStep', step, ending);
    return ending;
  }

  /**
   * Why a chunk failed, for the step's description: past the skip limit, the item and what to change (the job's
   * skipAdvice); else the error itself.
   */
  private failureOf(error: unknown, run: JobRun): string {
    if (!(error instanceof SkipLimitExceeded)) return logReason(error);
    const advice = this.registry.get(run.job)?.skipAdvice(error.limit) ?? 'raise the option skipLimit';
    return skipLimitDescription(error, run.id, advice);
  }

  private async handBack(owner: string, row: StepRow): Promise<null> {
    await this.leases.handBack(owner, null, [row.id]);
    return null;
  }

  /**
   * A step that lost its connection to a database (one it reads or writes) hands itself back for the pause's `ms`, and
   * its execution with it when the step is the execution's own (not a partition), so that its slot serves other work
   * meanwhile; any worker continues it after, its back-off doubling from the outages noted. False when the service's
   * own database cannot be reached either: it waits in its slot.
   */
  private async pause(owner: string, row: StepRow, pause: { ms: number; outages: number }): Promise<boolean> {
    try {
      await this.leases.handBack(owner, row.partition === null ? row.job_execution_id : null, [row.id], pause);
      return true;
    } catch (error) {
      if (isConnectionError(error)) return false;
      throw error;
    }
  }
}

/** How a job's chunk commits (JobRunner.chunk): a bulk load's chunks each waited a few ms for the WAL flush. */
const CHUNK_COMMIT = 'SET LOCAL synchronous_commit = off';

/** What a claim or a renewal of a lease is good for: three quarters of BATCH_JOB_LEASE_MS (see JobWorker). */
export function leaseMs(config: AppConfig): number {
  return Math.round((config.jobs.leaseMs * 3) / 4);
}

const STANDARD_CODES = ['COMPLETED', 'COMPLETED_WITH_SKIPS', 'FAILED', 'STOPPED'];

function jobRun(definition: JobDefinition, row: ExecutionRow): JobRun {
  return {
    id: row.id,
    instanceId: row.instance_id,
    job: row.job,
    clientId: row.client_id,
    parameters: withDefaults(definition.parameters, row.parameters),
    options: withDefaults(definition.options, row.options),
  };
}

function failed(description: string): Ending {
  return { status: 'FAILED', code: 'FAILED', description };
}

function endingOf(step: StepRow): Ending {
  return { status: step.status, code: step.exit_code ?? step.status, description: step.exit_description };
}

/**
 * A partitioned step ends FAILED when a partition did (described by the first that did), else STOPPED when one
 * stopped, else COMPLETED.
 */
function partitionsEnding(partitions: PartitionStatus[]): Ending {
  const failures = partitions.filter(({ status }) => status === 'FAILED');
  if (failures.length === 1 && partitions.length === 1) return failed(failures[0].description ?? 'failed');
  if (failures.length > 0)
    return failed(
      `${failures.length} of ${partitions.length} partitions failed; ${failures[0].partition}: ${failures[0].description}`,
    );
  if (partitions.some(({ status }) => status === 'STOPPED'))
    return { status: 'STOPPED', code: 'STOPPED', description: null };
  return { status: 'COMPLETED', code: 'COMPLETED', description: null };
}
