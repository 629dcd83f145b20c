import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import type {
  IJobDefinition,
  IJobExecution,
  IJobExecutionList,
  IJobRejectList,
  IListJobExecutionsRequest,
  JobParameters,
  JobStatus,
} from '../../interfaces/job.interfaces';
import { AuthenticatedClient, missingGrant } from '../access/client.service';
import { BatchError } from '../batch-error';
import { Database } from '../storage/database';
import { describeJob, JobDefinition } from './job-definition';
import { checkLaunch, instanceIdentity, withDefaults } from './job-parameters';
import { JobRegistry } from './job-registry.service';
import { JobLaunches } from './repository/job-launches';
import type { LaunchOutcome } from './repository/job-rows';
import { JobViews } from './repository/job-views';
import { JobSignals } from './job-signals';

/** A client as a launch needs it: who, and what it is granted. */
export interface Launcher {
  id: string;
  admin: boolean;
  targets: string[];
  sources: string[];
}

/**
 * Spring Batch's JobLauncher and JobOperator, for REST, RPC and schedules (docs/jobs.md#the-model): a launch is checked
 * (the job, its parameters' types, the client's grants, the tables and columns they name) before anything is stored,
 * then decided in the database (batch.launch_job). A client sees and controls its own executions only (an admin
 * all): another's id is NOT_FOUND, as one that does not exist.
 */
@Injectable()
export class JobOperator {
  constructor(
    private readonly db: Database,
    private readonly registry: JobRegistry,
    private readonly launches: JobLaunches,
    private readonly views: JobViews,
    private readonly signals: JobSignals,
  ) {}

  listJobs(): IJobDefinition[] {
    return this.registry.all().map(describeJob);
  }

  /** Launches `job` as `client`: a new execution (STARTING), or CONFLICT with the reason and the execution in the way. */
  async launch(
    client: AuthenticatedClient,
    job: string,
    parameters: unknown,
    options: unknown,
  ): Promise<IJobExecution> {
    const definition = this.registry.named(job);
    const launch = await this.check(client, definition, parameters, options);
    const executionId = await this.launchChecked(client, definition, launch);
    return (await this.views.executions({ id: executionId }))[0];
  }

  /**
   * A launch checked: parameters and options as given, once their types, the grants and the job's own checks
   * (tables, columns) pass.
   */
  async check(
    client: Launcher,
    definition: JobDefinition,
    parameters: unknown,
    options: unknown,
  ): Promise<{ parameters: JobParameters; options: JobParameters }> {
    const launch = checkLaunch(definition, parameters, options);
    const effective = withDefaults(definition.parameters, launch.parameters);
    const refused = missingGrant(client, await definition.grants(effective));
    if (refused) throw new BatchError('FORBIDDEN', refused.replace('the client', 'this client'));
    await definition.validate(effective, withDefaults(definition.options, launch.options), client.id);
    return launch;
  }

  /** The identity of the instance these parameters name: a hash of them as what they mean (JobDefinition.identify). */
  async identityOf(definition: JobDefinition, parameters: JobParameters): Promise<string> {
    return instanceIdentity(definition, await definition.identify(withDefaults(definition.parameters, parameters)));
  }

  /**
   * Stores a checked launch of the instance `identity` names in `tx` (batch.launch_job); CONFLICT when it is refused.
   * The caller wakes the workers once `tx` committed.
   */
  async decide(
    tx: PoolClient,
    client: Launcher,
    definition: JobDefinition,
    launch: { parameters: JobParameters; options: JobParameters; identity: string },
  ): Promise<string> {
    const { executionId, outcome } = await this.launches.launch(tx, {
      clientId: client.id,
      job: definition.name,
      identity: launch.identity,
      parameters: launch.parameters,
      options: launch.options,
      startLimit: definition.startLimit,
      restartable: definition.restartable,
    });
    if (outcome !== 'LAUNCHED') throw refusal(outcome, executionId);
    return executionId;
  }

  /**
   * A checked launch in a transaction of its own, its identity worked out before (unless given); the workers woken
   * after.
   */
  private async launchChecked(
    client: Launcher,
    definition: JobDefinition,
    launch: { parameters: JobParameters; options: JobParameters },
    known?: string,
  ): Promise<string> {
    const identity = known ?? (await this.identityOf(definition, launch.parameters));
    const executionId = await this.db.transaction((tx) => this.decide(tx, client, definition, { ...launch, identity }));
    this.signals.wake();
    return executionId;
  }

  /**
   * Executions whose worker died, launched again (same parameters and options) within their job's start limit; but not
   * one that died before it committed a chunk right after the one before it died too: it would die where they both did
   * (a record too large for the worker, say), until its start limit.
   */
  async restartLost(tx: PoolClient, ids: string[]): Promise<void> {
    for (const lost of await this.launches.launchesOf(tx, ids)) {
      const definition = this.registry.get(lost.job);
      if (!definition?.restartable) continue;
      if (lost.lost_again) {
        const why = 'not launched again: the execution before it was lost at the same position; restart it by hand';
        await this.launches.keepEnded(tx, lost.id, why);
        continue;
      }
      await this.launches.launch(tx, {
        clientId: lost.client_id,
        job: lost.job,
        identity: lost.identity,
        parameters: lost.parameters,
        options: lost.options,
        startLimit: definition.startLimit,
        restartable: true,
      });
    }
  }

  async list(client: AuthenticatedClient, query: IListJobExecutionsRequest): Promise<IJobExecutionList> {
    const limit = query.limit ?? 50;
    const items = await this.views.executions({
      clientId: scope(client),
      job: query.job,
      status: query.status,
      instanceId: query.instanceId,
      before: query.cursor,
      limit,
    });
    return { items, nextCursor: items.length === limit ? items[items.length - 1].id : null };
  }

  async get(client: AuthenticatedClient, id: string): Promise<IJobExecution> {
    const [execution] = await this.views.executions({ id, clientId: scope(client) });
    if (!execution) throw new BatchError('NOT_FOUND', `No job execution ${id}`);
    return execution;
  }

  /** STARTING → STOPPED at once, STARTED → STOPPING (STOPPED at the next chunk boundary); STOPPING stays so. */
  async stop(client: AuthenticatedClient, id: string): Promise<IJobExecution> {
    await this.get(client, id);
    const status = await this.launches.stop(id);
    if (status !== 'STARTING' && status !== 'STARTED' && status !== 'STOPPING')
      throw wrongStatus(id, status, 'stopped', 'STARTING or STARTED');
    this.signals.finished();
    return this.get(client, id);
  }

  /**
   * A FAILED or STOPPED execution's instance launched again, from where it stopped: the new execution. The instance is
   * the one stored, not worked out again from its parameters: what they mean may have changed since (a column added to
   * a copy's tables), and the instance must not become a new one that starts over.
   */
  async restart(client: AuthenticatedClient, id: string): Promise<IJobExecution> {
    const execution = await this.get(client, id);
    if (execution.status !== 'FAILED' && execution.status !== 'STOPPED')
      throw wrongStatus(id, execution.status, 'restarted', 'FAILED or STOPPED');
    const definition = this.registry.get(execution.job);
    if (!definition) throw new BatchError('NOT_FOUND', `No job named ${execution.job} in this version of the service`);
    const launcher =
      client.admin && client.name !== execution.client ? await this.launcherOf(execution.client) : client;
    const launch = await this.check(launcher, definition, execution.parameters, execution.options);
    const identity = await this.launches.instanceIdentity(id);
    const executionId = await this.launchChecked(launcher, definition, launch, identity);
    return this.get(client, executionId);
  }

  /** FAILED or STOPPED → ABANDONED: its instance is never run again. */
  async abandon(client: AuthenticatedClient, id: string): Promise<IJobExecution> {
    await this.get(client, id);
    const abandoned = await this.launches.abandon(id);
    const status = abandoned?.status ?? null;
    if (status !== 'FAILED' && status !== 'STOPPED') throw wrongStatus(id, status, 'abandoned', 'FAILED or STOPPED');
    if (abandoned?.done) throw refusal('JOB_INSTANCE_COMPLETE', abandoned.done);
    if (abandoned?.running) throw refusal('JOB_EXECUTION_RUNNING', abandoned.running);
    this.signals.finished();
    return this.get(client, id);
  }

  async rejects(client: AuthenticatedClient, id: string, limit = 100, cursor?: string): Promise<IJobRejectList> {
    await this.get(client, id);
    const rows = await this.views.rejects(id, cursor ?? null, limit);
    return {
      items: rows.map(({ id: _, ...reject }) => reject),
      nextCursor: rows.length === limit ? rows[rows.length - 1].id : null,
    };
  }

  /** The client that owns an execution (by its name, its own for good), as a restart by an admin launches it. */
  private async launcherOf(name: string): Promise<Launcher> {
    const [row] = await this.db.query<Launcher>(
      `SELECT id, admin, targets, sources FROM batch.clients WHERE name = $1 AND revoked_at IS NULL`,
      [name],
    );
    if (!row) throw new BatchError('FORBIDDEN', 'the client of this execution was revoked');
    return row;
  }
}

/** The client whose executions a caller sees: its own, or all (null) for an admin. */
function scope(client: AuthenticatedClient): string | null {
  return client.admin ? null : client.id;
}

const REFUSALS: Record<Exclude<LaunchOutcome, 'LAUNCHED'>, string> = {
  JOB_EXECUTION_RUNNING: 'an execution of this job instance is running',
  JOB_INSTANCE_COMPLETE:
    'this job instance is complete: launch it with another runId (an identifying parameter every job takes) to run it again',
  JOB_NOT_RESTARTABLE: 'this job is never started twice, and this instance was started',
  START_LIMIT_EXCEEDED: 'this job instance was started as many times as its job allows',
};

function refusal(outcome: Exclude<LaunchOutcome, 'LAUNCHED'>, executionId: string): BatchError {
  return new BatchError('CONFLICT', `${REFUSALS[outcome]} (execution ${executionId})`, {
    reason: outcome,
    executionId,
  });
}

function wrongStatus(id: string, status: JobStatus | null, what: string, allowed: string): BatchError {
  if (status === null) return new BatchError('NOT_FOUND', `No job execution ${id}`);
  return new BatchError('CONFLICT', `Job execution ${id} is ${status}: only one ${allowed} can be ${what}`, {
    reason: 'WRONG_STATUS',
    status,
  });
}
