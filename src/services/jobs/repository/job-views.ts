import { Injectable } from '@nestjs/common';
import type {
  IJobExecution,
  IJobReject,
  IStepExecution,
  JobParameters,
  JobStatus,
} from '../../../interfaces/job.interfaces';
import { Database } from '../../storage/database';
import { JobRegistry } from '../job-registry.service';
import { progressOf, StepProgress } from './job-progress';

/** Executions, their steps and rejects as the API and the metrics read them. */

const EXECUTION_VIEW = `
  SELECT e.id, e.job, e.instance_id, e.parameters, e.options, c.name AS client, e.status, e.exit_code,
         e.exit_description, e.created_at, e.started_at, e.ended_at, e.start_count,
         NOT EXISTS (SELECT 1 FROM batch.job_executions n WHERE n.instance_id = e.instance_id AND n.id > e.id) AS latest
    FROM batch.job_executions e JOIN batch.clients c ON c.id = e.client_id`;

/** The retries a chunk step counted in its context (toolkit/chunk-step.ts); 0 where it holds no number. */
const RETRIES = (s: string) =>
  `CASE WHEN jsonb_typeof(${s}.execution_context -> 'retryCount') = 'number' ` +
  `THEN (${s}.execution_context ->> 'retryCount')::float8 ELSE 0 END`;

/**
 * Each step of the executions, once: a partitioned step with the sums of its partitions; how long its work took in
 * this execution, from its start to its last committed chunk (a partition's, in a partitioned step), and how long ago
 * that chunk committed, on the database's clock.
 */
const STEPS_VIEW = `
  SELECT s.job_execution_id, s.name, s.status, s.exit_code, s.exit_description, s.started_at, s.ended_at,
         coalesce(p.progress, s.execution_context -> 'progress') AS progress,
         coalesce(extract(epoch FROM coalesce(p.updated_at, s.updated_at) - s.started_at), 0)::float8 AS worked,
         greatest(extract(epoch FROM now() - coalesce(p.updated_at, s.updated_at)), 0)::float8 AS since_commit,
         ${['read', 'write', 'filter', 'read_skip', 'process_skip', 'write_skip', 'commit', 'rollback']
           .map((c) => `(s.${c}_count + coalesce(p.${c}_count, 0))::float8 AS ${c}_count`)
           .join(', ')},
         ${RETRIES('s')} + coalesce(p.retry_count, 0) AS retry_count
    FROM batch.step_executions s
    LEFT JOIN LATERAL (
      SELECT ${['read', 'write', 'filter', 'read_skip', 'process_skip', 'write_skip', 'commit', 'rollback']
        .map((c) => `sum(p.${c}_count) AS ${c}_count`)
        .join(', ')},
             sum(${RETRIES('p')}) AS retry_count,
             max(p.updated_at) AS updated_at,
             CASE WHEN count(*) > 0 THEN jsonb_build_object(
               'unit', min(p.execution_context -> 'progress' ->> 'unit'),
               'done', sum((p.execution_context -> 'progress' ->> 'done')::float8),
               'total', CASE WHEN count(*) = count(p.execution_context -> 'progress' ->> 'total')
                             THEN sum((p.execution_context -> 'progress' ->> 'total')::float8) END,
               'base', sum(coalesce((p.execution_context -> 'progress' ->> 'base')::float8, 0))) END AS progress
        FROM batch.step_executions p
       WHERE p.job_execution_id = s.job_execution_id AND p.name = s.name AND p.partition IS NOT NULL) p ON true
   WHERE s.job_execution_id = ANY ($1::bigint[]) AND s.partition IS NULL
   ORDER BY s.job_execution_id, s.id`;

interface ExecutionViewRow {
  id: string;
  job: string;
  instance_id: string;
  parameters: JobParameters;
  options: JobParameters;
  client: string;
  status: JobStatus;
  exit_code: string | null;
  exit_description: string | null;
  created_at: Date;
  started_at: Date | null;
  ended_at: Date | null;
  start_count: number;
  /** No newer execution of its instance exists. */
  latest: boolean;
}

interface StepViewRow {
  job_execution_id: string;
  name: string;
  status: JobStatus;
  exit_code: string | null;
  exit_description: string | null;
  started_at: Date | null;
  ended_at: Date | null;
  progress: StepProgress | null;
  worked: number;
  since_commit: number;
  read_count: number;
  write_count: number;
  filter_count: number;
  read_skip_count: number;
  process_skip_count: number;
  write_skip_count: number;
  commit_count: number;
  rollback_count: number;
  retry_count: number;
}

@Injectable()
export class JobViews {
  constructor(
    private readonly db: Database,
    private readonly registry: JobRegistry,
  ) {}

  /** Executions as the contract shows them, with their steps; `clientId` limits them to one client's. */
  async executions(filter: {
    id?: string;
    clientId?: string | null;
    job?: string;
    status?: JobStatus;
    instanceId?: string;
    before?: string;
    limit?: number;
  }): Promise<IJobExecution[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (condition: string, value: unknown) => (
      values.push(value),
      where.push(condition.replace('?', `$${values.length}`))
    );
    if (filter.id !== undefined) add('e.id = ?', filter.id);
    if (filter.clientId) add('e.client_id = ?', filter.clientId);
    if (filter.job !== undefined) add('e.job = ?', filter.job);
    if (filter.status !== undefined) add('e.status = ?', filter.status);
    if (filter.instanceId !== undefined) add('e.instance_id = ?', filter.instanceId);
    if (filter.before !== undefined) add('e.id < ?', filter.before);
    values.push(filter.limit ?? 1);
    const rows = await this.db.query<ExecutionViewRow>(
      `${EXECUTION_VIEW} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.id DESC LIMIT $${values.length}`,
      values,
    );
    if (rows.length === 0) return [];
    const steps = await this.db.query<StepViewRow>(STEPS_VIEW, [rows.map((row) => row.id)]);
    return rows.map((row) =>
      executionView(
        row,
        steps.filter((step) => step.job_execution_id === row.id),
        this.restartable(row),
      ),
    );
  }

  /**
   * Whether a restart of this execution would start (batch.launch_job): it ended FAILED or STOPPED and is its
   * instance's newest (so nothing runs and nothing completed the instance since), and its job restarts and has starts
   * left.
   */
  private restartable(row: ExecutionViewRow): boolean {
    const definition = this.registry.get(row.job);
    return (
      (row.status === 'FAILED' || row.status === 'STOPPED') &&
      row.latest &&
      definition !== undefined &&
      definition.restartable &&
      row.start_count < definition.startLimit
    );
  }

  /** A page of an execution's rejects, in the order they were recorded. */
  async rejects(executionId: string, after: string | null, limit: number): Promise<(IJobReject & { id: string })[]> {
    const rows = await this.db.query<{
      id: string;
      line: string | null;
      byte_offset: string | null;
      column_name: string | null;
      code: string;
      message: string;
      record: string | null;
    }>(
      `SELECT id, line, byte_offset, column_name, code, message, record FROM batch.job_rejects
        WHERE job_execution_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
      [executionId, after ?? 0, limit],
    );
    return rows.map((row) => ({
      id: row.id,
      line: row.line === null ? null : Number(row.line),
      byteOffset: row.byte_offset === null ? null : Number(row.byte_offset),
      column: row.column_name,
      code: row.code,
      message: row.message,
      record: row.record,
    }));
  }

  /** Counts of executions by job and status, for the metrics. */
  countsByStatus(): Promise<{ job: string; status: JobStatus; count: number }[]> {
    return this.db.query(
      `SELECT job, status, count(*)::float8 AS count FROM batch.job_executions GROUP BY job, status`,
    );
  }
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

function executionView(row: ExecutionViewRow, steps: StepViewRow[], restartable: boolean): IJobExecution {
  const current = steps.findLast((step) => step.progress) ?? null;
  return {
    id: row.id,
    job: row.job,
    instanceId: row.instance_id,
    parameters: row.parameters,
    options: row.options,
    client: row.client,
    status: row.status,
    exitStatus: row.exit_code === null ? null : { code: row.exit_code, description: row.exit_description },
    createdAt: row.created_at.toISOString(),
    startedAt: iso(row.started_at),
    endedAt: iso(row.ended_at),
    startCount: row.start_count,
    restartable,
    progress: progressOf(current?.progress ?? null, {
      worked: current?.worked ?? 0,
      sinceCommit: current?.since_commit ?? 0,
      running: row.ended_at === null,
    }),
    steps: steps.map(stepView),
  };
}

function stepView(step: StepViewRow): IStepExecution {
  return {
    name: step.name,
    status: step.status,
    exitStatus: step.exit_code === null ? null : { code: step.exit_code, description: step.exit_description },
    readCount: step.read_count,
    writeCount: step.write_count,
    filterCount: step.filter_count,
    readSkipCount: step.read_skip_count,
    processSkipCount: step.process_skip_count,
    writeSkipCount: step.write_skip_count,
    commitCount: step.commit_count,
    rollbackCount: step.rollback_count,
    retryCount: step.retry_count,
    startedAt: iso(step.started_at),
    endedAt: iso(step.ended_at),
  };
}
