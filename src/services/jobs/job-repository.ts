import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import type { StepCounts } from '../../interfaces/chunk.interfaces';
import type {
  IJobExecution,
  IJobReject,
  IStepExecution,
  JobConflictReason,
  JobParameters,
  JobStatus,
} from '../../interfaces/job.interfaces';
import { AppConfig } from '../../config/app-config';
import { stringifyJson } from '../exact-json';
import { Database } from '../storage/database';
import type { Partition } from './job-definition';

/**
 * Spring Batch's job repository in the schema `batch` (migration 1766100000000): instances, executions held by leases,
 * step executions with their counters and position, rejects. Every statement that moves a running execution or
 * step on is guarded by the lease (`lease_owner`), so that a worker that lost its lease changes nothing.
 */

/** An execution as a worker runs it. */
export interface ExecutionRow {
  id: string;
  instance_id: string;
  job: string;
  client_id: string;
  parameters: JobParameters;
  options: JobParameters;
  status: JobStatus;
  started_at: Date | null;
  /** Whether this claim started it (it was STARTING), rather than took it over. */
  first_start: boolean;
}

/** A step execution, or a partition of one, as a worker runs it. */
export interface StepRow {
  id: string;
  job_execution_id: string;
  name: string;
  partition: string | null;
  status: JobStatus;
  exit_code: string | null;
  exit_description: string | null;
  execution_context: Record<string, unknown>;
  skips: number;
}

/** How a step or an execution ended. */
export interface Ending {
  status: JobStatus;
  code: string;
  description: string | null;
}

/** Where a partition of a step is, and why it failed. */
export interface PartitionStatus {
  partition: string;
  status: JobStatus;
  description: string | null;
}

export type LaunchOutcome = 'LAUNCHED' | JobConflictReason;

const RUNNING: JobStatus[] = ['STARTING', 'STARTED', 'STOPPING'];
/** How the description of an execution whose worker was lost begins. */
const LOST = 'its worker';

const STEP_COLUMNS = `s.id, s.job_execution_id, s.name, s.partition, s.status, s.exit_code, s.exit_description,
  s.execution_context, (s.read_skip_count + s.process_skip_count + s.write_skip_count)::float8 AS skips`;

const EXECUTION_VIEW = `
  SELECT e.id, e.job, e.instance_id, e.parameters, e.options, c.name AS client, e.status, e.exit_code,
         e.exit_description, e.created_at, e.started_at, e.ended_at, e.start_count
    FROM batch.job_executions e JOIN batch.clients c ON c.id = e.client_id`;

/** Each step of the executions, once: a partitioned step with the sums of its partitions. */
const STEPS_VIEW = `
  SELECT s.job_execution_id, s.name, s.status, s.exit_code, s.exit_description, s.started_at, s.ended_at,
         coalesce(p.progress, s.execution_context -> 'progress') AS progress,
         ${['read', 'write', 'filter', 'read_skip', 'process_skip', 'write_skip', 'commit', 'rollback']
           .map((c) => `(s.${c}_count + coalesce(p.${c}_count, 0))::float8 AS ${c}_count`)
           .join(', ')}
    FROM batch.step_executions s
    LEFT JOIN LATERAL (
      SELECT ${['read', 'write', 'filter', 'read_skip', 'process_skip', 'write_skip', 'commit', 'rollback']
        .map((c) => `sum(p.${c}_count) AS ${c}_count`)
        .join(', ')},
             CASE WHEN count(*) > 0 THEN jsonb_build_object(
               'unit', min(p.execution_context -> 'progress' ->> 'unit'),
               'done', sum((p.execution_context -> 'progress' ->> 'done')::float8),
               'total', sum((p.execution_context -> 'progress' ->> 'total')::float8)) END AS progress
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
}

interface StepViewRow {
  job_execution_id: string;
  name: string;
  status: JobStatus;
  exit_code: string | null;
  exit_description: string | null;
  started_at: Date | null;
  ended_at: Date | null;
  progress: { unit?: string; done?: number; total?: number | null } | null;
  read_count: number;
  write_count: number;
  filter_count: number;
  read_skip_count: number;
  process_skip_count: number;
  write_skip_count: number;
  commit_count: number;
  rollback_count: number;
}

@Injectable()
export class JobRepository {
  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
  ) {}

  /** batch.launch_job: a new execution, or what stands in the way. */
  async launch(
    tx: PoolClient | Database,
    launch: {
      clientId: string;
      job: string;
      identity: string;
      parameters: JobParameters;
      options: JobParameters;
      startLimit: number;
      restartable: boolean;
    },
  ): Promise<{ executionId: string; outcome: LaunchOutcome }> {
    const sql = `SELECT execution_id::text, outcome FROM batch.launch_job($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6, $7)`;
    const values = [
      launch.clientId,
      launch.job,
      launch.identity,
      stringifyJson(launch.parameters),
      stringifyJson(launch.options),
      launch.startLimit,
      launch.restartable,
    ];
    const rows =
      tx instanceof Database
        ? await tx.query<{ execution_id: string; outcome: LaunchOutcome }>(sql, values)
        : (await tx.query<{ execution_id: string; outcome: LaunchOutcome }>(sql, values)).rows;
    return { executionId: rows[0].execution_id, outcome: rows[0].outcome };
  }

  /** Executions as a launch of their instance again needs them: client, job, identity, parameters and options. */
  async launchesOf(
    tx: PoolClient | null,
    ids: string[],
  ): Promise<
    {
      id: string;
      client_id: string;
      job: string;
      identity: string;
      parameters: JobParameters;
      options: JobParameters;
      /** Lost without committing a chunk, right after the execution before it was lost: where it stood. */
      lost_again: boolean;
    }[]
  > {
    const sql = `SELECT e.id, e.client_id, e.job, i.identity, e.parameters, e.options,
                        NOT EXISTS (SELECT FROM batch.step_executions s WHERE s.job_execution_id = e.id AND s.commit_count > 0)
                        AND (SELECT p.exit_description FROM batch.job_executions p
                              WHERE p.instance_id = e.instance_id AND p.id < e.id ORDER BY p.id DESC LIMIT 1)
                            LIKE '${LOST} %' AS lost_again
                   FROM batch.job_executions e JOIN batch.job_instances i ON i.id = e.instance_id
                  WHERE e.id = ANY ($1::bigint[]) ORDER BY e.id`;
    return tx ? (await tx.query(sql, [ids])).rows : this.db.query(sql, [ids]);
  }

  /** Says in a lost execution's description that it is not launched again, and why. */
  async keepEnded(tx: PoolClient, id: string, why: string): Promise<void> {
    await tx.query(
      `UPDATE batch.job_executions SET exit_description = left(exit_description || '; ' || $2, 2000) WHERE id = $1`,
      [id, why],
    );
  }

  /** Executions as the contract shows them, with their steps; `clientId` limits them to one client's. */
  async executions(filter: {
    id?: string;
    clientId?: string | null;
    job?: string;
    status?: JobStatus;
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
      ),
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

  /**
   * A stop request: an execution not claimed yet is STOPPED at once (and notified); a running one is STOPPING, and its
   * worker stops it at the next chunk boundary. Returns the status it had, or null when there is no such execution.
   */
  stop(id: string): Promise<JobStatus | null> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ status: JobStatus }>(
        `SELECT status FROM batch.job_executions WHERE id = $1 FOR UPDATE`,
        [id],
      );
      if (rows.length === 0) return null;
      const status = rows[0].status;
      if (status === 'STARTING')
        await this.end(tx, id, null, { status: 'STOPPED', code: 'STOPPED', description: 'stopped before it started' });
      if (status === 'STARTED')
        await tx.query(`UPDATE batch.job_executions SET status = 'STOPPING' WHERE id = $1`, [id]);
      return status;
    });
  }

  /**
   * FAILED or STOPPED → ABANDONED (never restarted), unless another execution of its instance completed or was
   * abandoned since (its instance is done already: `done` names that one). Returns the status it had, or null when
   * there is none. The instance's row is locked, as launches lock it, so that two abandons take turns.
   */
  abandon(id: string): Promise<{ status: JobStatus; done: string | null } | null> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ status: JobStatus; exit_description: string | null; done: string | null }>(
        `SELECT e.status, e.exit_description,
                (SELECT d.id FROM batch.job_executions d
                  WHERE d.instance_id = e.instance_id AND d.status IN ('COMPLETED', 'ABANDONED')) AS done
           FROM batch.job_executions e JOIN batch.job_instances i ON i.id = e.instance_id
          WHERE e.id = $1 FOR UPDATE`,
        [id],
      );
      if (rows.length === 0) return null;
      const { status, exit_description, done } = rows[0];
      if ((status === 'FAILED' || status === 'STOPPED') && done === null)
        await this.end(tx, id, null, { status: 'ABANDONED', code: status, description: exit_description });
      return { status, done };
    });
  }

  /**
   * Ends an execution (held by `owner`, or by nobody when null) with `ending` and writes its `job.finished`
   * notification; false when it is not held so.
   */
  async end(tx: PoolClient, id: string, owner: string | null, ending: Ending): Promise<boolean> {
    const { rowCount } = await tx.query(
      `UPDATE batch.job_executions
          SET status = $3, exit_code = $4, exit_description = left($5, 2000), ended_at = now(), lease_owner = NULL,
              lease_until = NULL
        WHERE id = $1 AND lease_owner IS NOT DISTINCT FROM $2`,
      [id, owner, ending.status, ending.code, ending.description],
    );
    if (!rowCount) return false;
    await tx.query(`SELECT batch.job_finished(ARRAY[$1::bigint])`, [id]);
    return true;
  }

  /**
   * Claims an execution that needs a worker: launched (STARTING → STARTED), or running without one (handed back at a
   * worker's shutdown, or STOPPING); held by `owner` for `leaseMs`. Clients take turns, as the queue's do: the oldest
   * waiting execution of the client that runs the fewest now, and a client that runs BATCH_JOB_MAX_RUNNING_PER_CLIENT
   * starts no more (one handed back is continued), so that one client's hundreds of launches delay nobody else's.
   */
  async claimExecution(owner: string, leaseMs: number): Promise<ExecutionRow | null> {
    const [row] = await this.db.query<ExecutionRow>(
      `WITH running AS (
         SELECT client_id, count(*) AS n FROM batch.job_executions
          WHERE status IN ('STARTED', 'STOPPING') AND lease_owner IS NOT NULL GROUP BY client_id),
       waiting AS (
         SELECT DISTINCT ON (client_id) id FROM batch.job_executions
          WHERE status IN ('STARTING', 'STARTED', 'STOPPING') AND lease_owner IS NULL ORDER BY client_id, id),
       claimed AS (
         SELECT e.id, e.status = 'STARTING' AS first_start FROM batch.job_executions e
           JOIN waiting w ON w.id = e.id LEFT JOIN running r ON r.client_id = e.client_id
          WHERE e.status IN ('STARTING', 'STARTED', 'STOPPING') AND e.lease_owner IS NULL
            AND (e.status <> 'STARTING' OR coalesce(r.n, 0) < $3)
          ORDER BY coalesce(r.n, 0), e.id LIMIT 1 FOR UPDATE OF e SKIP LOCKED)
       UPDATE batch.job_executions e
          SET status = CASE WHEN e.status = 'STARTING' THEN 'STARTED' ELSE e.status END,
              started_at = coalesce(e.started_at, now()), lease_owner = $1, lease_until = now() + $2 * interval '1 ms'
         FROM claimed WHERE e.id = claimed.id
       RETURNING e.id, e.instance_id, e.job, e.client_id, e.parameters, e.options, e.status, e.started_at,
                 claimed.first_start`,
      [owner, leaseMs, this.config.jobs.maxRunningPerClient],
    );
    return row ?? null;
  }

  /**
   * Claims an open partition whose execution is running (of `executionId` only, when given), for `owner`; clients take
   * turns: one of the client whose partitions are run the least now.
   */
  async claimPartition(owner: string, leaseMs: number, executionId?: string): Promise<StepRow | null> {
    const [row] = await this.db.query<StepRow>(
      `WITH running AS (
         SELECT e.client_id, count(*) AS n FROM batch.step_executions p JOIN batch.job_executions e ON e.id = p.job_execution_id
          WHERE p.partition IS NOT NULL AND p.status IN ('STARTING', 'STARTED') AND p.lease_owner IS NOT NULL
          GROUP BY e.client_id),
       claimed AS (
         SELECT p.id FROM batch.step_executions p JOIN batch.job_executions e ON e.id = p.job_execution_id
           LEFT JOIN running r ON r.client_id = e.client_id
          WHERE p.partition IS NOT NULL AND p.status IN ('STARTING', 'STARTED') AND p.lease_owner IS NULL
            AND e.status = 'STARTED' AND ($3::bigint IS NULL OR p.job_execution_id = $3)
          ORDER BY coalesce(r.n, 0), p.id LIMIT 1 FOR UPDATE OF p SKIP LOCKED)
       UPDATE batch.step_executions s
          SET status = 'STARTED', started_at = coalesce(s.started_at, now()), lease_owner = $1,
              lease_until = now() + $2 * interval '1 ms', updated_at = now()
         FROM claimed WHERE s.id = claimed.id
       RETURNING ${STEP_COLUMNS}`,
      [owner, leaseMs, executionId ?? null],
    );
    return row ?? null;
  }

  /** The execution a partition belongs to, as a worker runs it. */
  async executionOf(id: string): Promise<ExecutionRow> {
    const [row] = await this.db.query<ExecutionRow>(
      `SELECT id, instance_id, job, client_id, parameters, options, status, started_at, false AS first_start
         FROM batch.job_executions WHERE id = $1`,
      [id],
    );
    return row;
  }

  /**
   * Renews the leases `owner` holds; answers the executions still held, with their status (STOPPING: stop at the next
   * chunk boundary), and the step executions still held. One that is missing was lost.
   */
  async renew(
    owner: string,
    leaseMs: number,
    executionIds: string[],
    stepIds: string[],
  ): Promise<{ executions: Map<string, JobStatus>; steps: Set<string> }> {
    const rows = await this.db.query<{ kind: 'e' | 's'; id: string; status: JobStatus | null }>(
      `WITH e AS (
         UPDATE batch.job_executions SET lease_until = now() + $2 * interval '1 ms'
          WHERE id = ANY ($3::bigint[]) AND lease_owner = $1 RETURNING id, status),
       s AS (
         UPDATE batch.step_executions SET lease_until = now() + $2 * interval '1 ms'
          WHERE id = ANY ($4::bigint[]) AND lease_owner = $1 RETURNING id)
       SELECT 'e' AS kind, id, status FROM e UNION ALL SELECT 's', id, NULL FROM s`,
      [owner, leaseMs, executionIds, stepIds],
    );
    return {
      executions: new Map(rows.filter((r) => r.kind === 'e').map((r) => [r.id, r.status!])),
      steps: new Set(rows.filter((r) => r.kind === 's').map((r) => r.id)),
    };
  }

  /**
   * Executions whose worker stopped renewing its lease (killed, lost host) end FAILED (STOPPED when a stop was
   * requested), their steps with them, notified, and those that failed are passed to `restart`, in the same
   * transaction; partitions whose worker did are left open for another. Answers the executions ended and the
   * partitions freed.
   */
  reapExpired(
    restart: (tx: PoolClient, ended: string[]) => Promise<void>,
  ): Promise<{ ended: { id: string; job: string; status: JobStatus }[]; partitions: { job: string }[] }> {
    return this.db.transaction(async (tx) => {
      const { rows: ended } = await tx.query<{ id: string; job: string; status: JobStatus }>(
        `WITH lost AS (
           SELECT id FROM batch.job_executions
            WHERE status IN ('STARTED', 'STOPPING') AND lease_owner IS NOT NULL AND lease_until < now()
            FOR UPDATE SKIP LOCKED)
         UPDATE batch.job_executions e
            SET status = CASE e.status WHEN 'STOPPING' THEN 'STOPPED' ELSE 'FAILED' END,
                exit_code = CASE e.status WHEN 'STOPPING' THEN 'STOPPED' ELSE 'FAILED' END,
                exit_description = '${LOST} (' || e.lease_owner || ') stopped renewing its lease: it was killed or lost',
                ended_at = now(), lease_owner = NULL, lease_until = NULL
           FROM lost WHERE e.id = lost.id
         RETURNING e.id, e.job, e.status`,
      );
      if (ended.length > 0) {
        const ids = ended.map((row) => row.id);
        await tx.query(
          `UPDATE batch.step_executions s
              SET status = e.status, exit_code = e.status, exit_description = e.exit_description, ended_at = now(),
                  lease_owner = NULL, lease_until = NULL
             FROM batch.job_executions e
            WHERE e.id = s.job_execution_id AND s.job_execution_id = ANY ($1::bigint[])
              AND s.status IN ('STARTING', 'STARTED', 'STOPPING')`,
          [ids],
        );
        await tx.query(`SELECT batch.job_finished($1::bigint[])`, [ids]);
        await restart(
          tx,
          ended.filter((row) => row.status === 'FAILED').map((row) => row.id),
        );
      }
      const { rows: partitions } = await tx.query<{ job: string }>(
        `WITH lost AS (
           SELECT id FROM batch.step_executions
            WHERE partition IS NOT NULL AND status IN ('STARTING', 'STARTED') AND lease_owner IS NOT NULL
              AND lease_until < now() FOR UPDATE SKIP LOCKED)
         UPDATE batch.step_executions s SET lease_owner = NULL, lease_until = NULL
           FROM lost, batch.job_executions e WHERE s.id = lost.id AND e.id = s.job_execution_id
         RETURNING e.job`,
      );
      return { ended, partitions };
    });
  }

  /** Gives back what `owner` holds of an execution (its lease, its running steps'): another worker continues it. */
  async handBack(owner: string, executionId: string | null, stepIds: string[]): Promise<void> {
    await this.db.query(
      `WITH s AS (UPDATE batch.step_executions SET lease_owner = NULL, lease_until = NULL
                   WHERE id = ANY ($3::bigint[]) AND lease_owner = $1)
       UPDATE batch.job_executions SET lease_owner = NULL, lease_until = NULL WHERE id = $2 AND lease_owner = $1`,
      [owner, executionId, stepIds],
    );
  }

  /** The step of an execution (not a partition), when it has one of that name. */
  async step(executionId: string, name: string): Promise<StepRow | null> {
    const [row] = await this.db.query<StepRow>(
      `SELECT ${STEP_COLUMNS} FROM batch.step_executions s WHERE s.job_execution_id = $1 AND s.name = $2 AND s.partition IS NULL`,
      [executionId, name],
    );
    return row ?? null;
  }

  /** The step of that name in the instance's last execution before `executionId` that ran it. */
  async priorStep(instanceId: string, executionId: string, name: string): Promise<StepRow | null> {
    const [row] = await this.db.query<StepRow>(
      `SELECT ${STEP_COLUMNS} FROM batch.job_executions e
         JOIN batch.step_executions s ON s.job_execution_id = e.id AND s.name = $3 AND s.partition IS NULL
        WHERE e.instance_id = $1 AND e.id < $2 ORDER BY e.id DESC LIMIT 1`,
      [instanceId, executionId, name],
    );
    return row ?? null;
  }

  /** The partitions of a step that did not complete, with their positions (to run again on a restart). */
  async unfinishedPartitions(step: StepRow): Promise<Partition[]> {
    return this.db.query<Partition>(
      `SELECT partition AS name, execution_context AS context FROM batch.step_executions
        WHERE job_execution_id = $1 AND name = $2 AND partition IS NOT NULL AND status <> 'COMPLETED' ORDER BY id`,
      [step.job_execution_id, step.name],
    );
  }

  /** Starts a step of an execution held by `owner`, from `context` (a restart's saved position). */
  async startStep(
    executionId: string,
    name: string,
    owner: string,
    context: Record<string, unknown>,
  ): Promise<StepRow> {
    const [row] = await this.db.query<StepRow>(
      `INSERT INTO batch.step_executions AS s (job_execution_id, name, status, execution_context, started_at, lease_owner, lease_until)
       SELECT $1, $2, 'STARTED', $4::text::jsonb, now(), $3, e.lease_until FROM batch.job_executions e
        WHERE e.id = $1 AND e.lease_owner = $3
       RETURNING ${STEP_COLUMNS}`,
      [executionId, name, owner, stringifyJson(context)],
    );
    if (!row) throw new LeaseLost();
    return row;
  }

  /** Takes over a running step of an execution now held by `owner` (continued after a hand-back). */
  async takeStep(step: StepRow, owner: string): Promise<void> {
    const { rowCount } = await this.db.pool.query(
      `UPDATE batch.step_executions s SET lease_owner = $2, lease_until = e.lease_until
         FROM batch.job_executions e
        WHERE s.id = $1 AND e.id = s.job_execution_id AND e.lease_owner = $2`,
      [step.id, owner],
    );
    if (!rowCount) throw new LeaseLost();
  }

  /** A partitioned step's partitions, created at once with the step's note that they were. */
  async createPartitions(step: StepRow, owner: string, partitions: Partition[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE batch.step_executions SET execution_context = execution_context || '{"partitioned": true}'
          WHERE id = $1 AND lease_owner = $2`,
        [step.id, owner],
      );
      if (!rowCount) throw new LeaseLost();
      await tx.query(
        `INSERT INTO batch.step_executions (job_execution_id, name, partition, status, execution_context)
         SELECT $1, $2, p.name, 'STARTING', p.context FROM jsonb_to_recordset($3::text::jsonb) AS p(name text, context jsonb)`,
        [step.job_execution_id, step.name, stringifyJson(partitions)],
      );
    });
  }

  /** The statuses of a partitioned step's partitions. */
  async partitionStatuses(step: StepRow): Promise<PartitionStatus[]> {
    return this.db.query<PartitionStatus>(
      `SELECT partition, status, exit_description AS description FROM batch.step_executions
        WHERE job_execution_id = $1 AND name = $2 AND partition IS NOT NULL ORDER BY partition`,
      [step.job_execution_id, step.name],
    );
  }

  /** Partitions nobody runs of a step whose execution is stopping: STOPPED, as nobody will run them now. */
  async stopOpenPartitions(step: StepRow): Promise<void> {
    await this.db.query(
      `UPDATE batch.step_executions SET status = 'STOPPED', exit_code = 'STOPPED', ended_at = now()
        WHERE job_execution_id = $1 AND name = $2 AND partition IS NOT NULL AND lease_owner IS NULL
          AND status IN ('STARTING', 'STARTED')`,
      [step.job_execution_id, step.name],
    );
  }

  /**
   * The guard of a chunk's transaction: locks the step (or partition) held by `owner`, and answers its execution's
   * status; LeaseLost when it is not held so any more.
   */
  async guardChunk(tx: PoolClient, stepId: string, owner: string): Promise<JobStatus> {
    const { rows } = await tx.query<{ status: JobStatus }>({
      name: 'job-chunk-guard',
      text: `UPDATE batch.step_executions s SET updated_at = now() FROM batch.job_executions e
              WHERE s.id = $1 AND s.lease_owner = $2 AND s.status = 'STARTED' AND e.id = s.job_execution_id
              RETURNING e.status`,
      values: [stepId, owner],
    });
    if (rows.length === 0) throw new LeaseLost();
    return rows[0].status;
  }

  /** Saves a chunk's counts, the step's position and the chunk's rejects, in the chunk's transaction. */
  async saveChunk(
    tx: PoolClient,
    step: StepRow,
    counts: StepCounts,
    context: Record<string, unknown>,
    rejects: IJobReject[],
  ): Promise<void> {
    await tx.query({
      name: 'job-chunk-save',
      text: `UPDATE batch.step_executions
                SET read_count = read_count + $2, write_count = write_count + $3, filter_count = filter_count + $4,
                    read_skip_count = read_skip_count + $5, process_skip_count = process_skip_count + $6,
                    write_skip_count = write_skip_count + $7, commit_count = commit_count + 1,
                    rollback_count = rollback_count + $8, execution_context = $9::text::jsonb, updated_at = now()
              WHERE id = $1`,
      values: [
        step.id,
        counts.readCount,
        counts.writeCount,
        counts.filterCount,
        counts.readSkipCount,
        counts.processSkipCount,
        counts.writeSkipCount,
        counts.rollbackCount,
        stringifyJson(context),
      ],
    });
    if (rejects.length === 0) return;
    await tx.query(
      `INSERT INTO batch.job_rejects (job_execution_id, step, line, byte_offset, column_name, code, message, record)
       SELECT $1, $2, r.line, r."byteOffset", r."column", r.code, r.message, r.record
         FROM jsonb_to_recordset($3::text::jsonb)
           AS r(line bigint, "byteOffset" bigint, "column" text, code text, message text, record text)`,
      [step.job_execution_id, step.name, JSON.stringify(rejects)],
    );
  }

  /** Saves a step's position outside any chunk (what its `open` worked out). */
  async saveContext(step: StepRow, owner: string, context: Record<string, unknown>): Promise<void> {
    const rows = await this.db.query(
      `UPDATE batch.step_executions SET execution_context = $3::text::jsonb WHERE id = $1 AND lease_owner = $2 RETURNING 1`,
      [step.id, owner, stringifyJson(context)],
    );
    if (rows.length === 0) throw new LeaseLost();
  }

  /** Counts a chunk that rolled back. */
  async countRollback(step: StepRow, owner: string): Promise<void> {
    await this.db.query(
      `UPDATE batch.step_executions SET rollback_count = rollback_count + 1 WHERE id = $1 AND lease_owner = $2`,
      [step.id, owner],
    );
  }

  /** Ends a step or partition held by `owner`. */
  async endStep(step: StepRow, owner: string, ending: Ending): Promise<void> {
    const rows = await this.db.query(
      `UPDATE batch.step_executions
          SET status = $3, exit_code = $4, exit_description = left($5, 2000), ended_at = now(), lease_owner = NULL,
              lease_until = NULL, updated_at = now()
        WHERE id = $1 AND lease_owner = $2 RETURNING 1`,
      [step.id, owner, ending.status, ending.code, ending.description],
    );
    if (rows.length === 0) throw new LeaseLost();
  }

  /** Ends an execution held by `owner`, notified; LeaseLost when it is not held so. */
  async endExecution(id: string, owner: string, ending: Ending): Promise<void> {
    const ended = await this.db.transaction((tx) => this.end(tx, id, owner, ending));
    if (!ended) throw new LeaseLost();
  }

  /** Whether the execution has any step with skips. */
  async hasSkips(executionId: string): Promise<boolean> {
    const [row] = await this.db.query<{ skipped: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM batch.step_executions WHERE job_execution_id = $1
                       AND read_skip_count + process_skip_count + write_skip_count > 0) AS skipped`,
      [executionId],
    );
    return row.skipped;
  }

  /** Counts of executions by job and status, for the metrics. */
  countsByStatus(): Promise<{ job: string; status: JobStatus; count: number }[]> {
    return this.db.query(
      `SELECT job, status, count(*)::float8 AS count FROM batch.job_executions GROUP BY job, status`,
    );
  }
}

/** The worker no longer holds the execution or step it was running: another took it over, or it was ended. */
export class LeaseLost extends Error {
  constructor() {
    super('the lease was lost');
  }
}

export function isRunning(status: JobStatus): boolean {
  return RUNNING.includes(status);
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

function executionView(row: ExecutionViewRow, steps: StepViewRow[]): IJobExecution {
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
    progress: current ? progress(row, current, steps) : null,
    steps: steps.map(stepView),
  };
}

/** How far the execution is, by its current step's progress, at the pace of what it read so far. */
function progress(row: ExecutionViewRow, step: StepViewRow, steps: StepViewRow[]): IJobExecution['progress'] {
  const done = Number(step.progress?.done ?? 0);
  const total =
    step.progress?.total === null || step.progress?.total === undefined ? null : Number(step.progress.total);
  const read = steps.reduce((sum, s) => sum + s.read_count, 0);
  const seconds = row.started_at ? ((row.ended_at ?? new Date()).getTime() - row.started_at.getTime()) / 1000 : 0;
  const perSecond = seconds > 0 ? Math.round((read / seconds) * 10) / 10 : null;
  const etaSeconds =
    total !== null && perSecond ? Math.max(0, Math.round((total - done) / perSecond)) : total === done ? 0 : null;
  return { unit: step.progress?.unit ?? 'items', done, total, perSecond, etaSeconds };
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
    startedAt: iso(step.started_at),
    endedAt: iso(step.ended_at),
  };
}
