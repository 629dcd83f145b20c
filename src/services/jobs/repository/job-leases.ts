import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { AppConfig } from '../../../config/app-config';
import type { JobStatus } from '../../../interfaces/job.interfaces';
import { Database } from '../../storage/database';
import { STEP_COLUMNS } from './step-executions';
import { Ending, ExecutionRow, LeaseLost, LOST, StepRow } from './job-rows';

/** What workers hold: executions and partitions claimed, their leases renewed, reaped or handed back. */
@Injectable()
export class JobLeases {
  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
  ) {}

  /**
   * Claims an execution that needs a worker: launched (STARTING → STARTED), or running without one (handed back at a
   * worker's shutdown, or STOPPING; one paused is not claimed before its pause ends, unless to be stopped); held by
   * `owner` for `leaseMs`. Clients take turns, as the queue's do: the oldest waiting execution of the client that runs
   * the fewest now, and a client that runs BATCH_JOB_MAX_RUNNING_PER_CLIENT starts no more (one handed back is
   * continued), so that one client's hundreds of launches delay nobody else's.
   */
  async claimExecution(owner: string, leaseMs: number): Promise<ExecutionRow | null> {
    const [row] = await this.db.query<ExecutionRow>(
      `WITH running AS (
         SELECT client_id, count(*) AS n FROM batch.job_executions
          WHERE status IN ('STARTED', 'STOPPING') AND lease_owner IS NOT NULL GROUP BY client_id),
       waiting AS (
         SELECT DISTINCT ON (client_id) id FROM batch.job_executions
          WHERE status IN ('STARTING', 'STARTED', 'STOPPING') AND lease_owner IS NULL
            AND (lease_until IS NULL OR lease_until <= now() OR status = 'STOPPING') ORDER BY client_id, id),
       claimed AS (
         SELECT e.id, e.status = 'STARTING' AS first_start FROM batch.job_executions e
           JOIN waiting w ON w.id = e.id LEFT JOIN running r ON r.client_id = e.client_id
          WHERE e.status IN ('STARTING', 'STARTED', 'STOPPING') AND e.lease_owner IS NULL
            AND (e.lease_until IS NULL OR e.lease_until <= now() OR e.status = 'STOPPING')
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
   * Claims an open partition whose execution is running (of `executionId` only, when given) and that is not paused, for
   * `owner`; clients take turns: one of the client whose partitions are run the least now.
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
            AND (p.lease_until IS NULL OR p.lease_until <= now()) AND e.status = 'STARTED'
            AND ($3::bigint IS NULL OR p.job_execution_id = $3)
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
        await endOpenSteps(tx, ids);
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

  /**
   * Gives back what `owner` holds of an execution (its lease, its running steps'): another worker continues it, at
   * once, or after a pause (its `ms`: the lease's end with no owner is when it may be claimed again), the steps'
   * outages in a row noted for the back-off of whoever continues them.
   */
  async handBack(
    owner: string,
    executionId: string | null,
    stepIds: string[],
    pause: { ms: number; outages: number } | null = null,
  ): Promise<void> {
    await this.db.query(
      `WITH s AS (UPDATE batch.step_executions
                     SET lease_owner = NULL, lease_until = now() + $4 * interval '1 ms', outages = coalesce($5, outages)
                   WHERE id = ANY ($3::bigint[]) AND lease_owner = $1)
       UPDATE batch.job_executions SET lease_owner = NULL, lease_until = now() + $4 * interval '1 ms'
        WHERE id = $2 AND lease_owner = $1`,
      [owner, executionId, stepIds, pause?.ms ?? null, pause?.outages ?? null],
    );
  }

  /** Ends an execution held by `owner`, notified; LeaseLost when it is not held so. */
  async endExecution(id: string, owner: string, ending: Ending): Promise<void> {
    const ended = await this.db.transaction((tx) => endExecution(tx, id, owner, ending));
    if (!ended) throw new LeaseLost();
  }
}

/**
 * Ends an execution (held by `owner`, or by nobody when null) with `ending`, and its steps with it, and writes its
 * `job.finished` notification; false when it is not held so.
 */
export async function endExecution(tx: PoolClient, id: string, owner: string | null, ending: Ending): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE batch.job_executions
        SET status = $3, exit_code = $4, exit_description = left($5, 2000), ended_at = now(), lease_owner = NULL,
            lease_until = NULL
      WHERE id = $1 AND lease_owner IS NOT DISTINCT FROM $2`,
    [id, owner, ending.status, ending.code, ending.description],
  );
  if (!rowCount) return false;
  await endOpenSteps(tx, [id]);
  await tx.query(`SELECT batch.job_finished(ARRAY[$1::bigint])`, [id]);
  return true;
}

/**
 * The steps and partitions still open of executions that have just ended, ended as they did: where an execution ends
 * outside its flow (its worker lost, a stop taken while it was handed back, a grant gone), a worker still running one
 * of its partitions finds it lost at its next chunk, and writes no more of it.
 */
async function endOpenSteps(tx: PoolClient, executionIds: string[]): Promise<void> {
  await tx.query(
    `UPDATE batch.step_executions s
        SET status = e.status, exit_code = e.status, exit_description = e.exit_description, ended_at = now(),
            lease_owner = NULL, lease_until = NULL
       FROM batch.job_executions e
      WHERE e.id = s.job_execution_id AND s.job_execution_id = ANY ($1::bigint[])
        AND s.status IN ('STARTING', 'STARTED', 'STOPPING')`,
    [executionIds],
  );
}
