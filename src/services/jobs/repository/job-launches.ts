import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import type { JobParameters, JobStatus } from '../../../interfaces/job.interfaces';
import { stringifyJson } from '../../exact-json';
import { Database } from '../../storage/database';
import { endExecution } from './job-leases';
import { LaunchOutcome, LOST } from './job-rows';

/** What the operator decides of an instance's executions: launches, stops, abandons. */
@Injectable()
export class JobLaunches {
  constructor(private readonly db: Database) {}

  /** batch.launch_job: a new execution, or what stands in the way. */
  async launch(
    tx: PoolClient,
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
    const { rows } = await tx.query<{ execution_id: string; outcome: LaunchOutcome }>(sql, values);
    return { executionId: rows[0].execution_id, outcome: rows[0].outcome };
  }

  /** The identity of the instance an execution belongs to, as stored (what a restart launches again). */
  async instanceIdentity(executionId: string): Promise<string> {
    const [{ identity }] = await this.db.query<{ identity: string }>(
      `SELECT i.identity FROM batch.job_executions e JOIN batch.job_instances i ON i.id = e.instance_id WHERE e.id = $1`,
      [executionId],
    );
    return identity;
  }

  /** Executions as a launch of their instance again needs them: client, job, identity, parameters and options. */
  async launchesOf(
    tx: PoolClient,
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
    return (await tx.query(sql, [ids])).rows;
  }

  /** Says in a lost execution's description that it is not launched again, and why. */
  async keepEnded(tx: PoolClient, id: string, why: string): Promise<void> {
    await tx.query(
      `UPDATE batch.job_executions SET exit_description = left(exit_description || '; ' || $2, 2000) WHERE id = $1`,
      [id, why],
    );
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
        await endExecution(tx, id, null, {
          status: 'STOPPED',
          code: 'STOPPED',
          description: 'stopped before it started',
        });
      if (status === 'STARTED')
        await tx.query(`UPDATE batch.job_executions SET status = 'STOPPING' WHERE id = $1`, [id]);
      return status;
    });
  }

  /**
   * FAILED or STOPPED → ABANDONED (never restarted), unless another execution of its instance completed or was
   * abandoned since (its instance is done already: `done` names that one) or runs (a restart of it: `running`).
   * Returns the status it had, or null when there is none. The instance's row is locked first, in a statement of its
   * own, as launches lock it: an abandon and a launch or another abandon take turns, and each reads what the one
   * before it committed.
   */
  abandon(id: string): Promise<{ status: JobStatus; done: string | null; running: string | null } | null> {
    return this.db.transaction(async (tx) => {
      await tx.query(
        `SELECT FROM batch.job_instances i JOIN batch.job_executions e ON e.instance_id = i.id WHERE e.id = $1 FOR UPDATE OF i`,
        [id],
      );
      const { rows } = await tx.query<{
        status: JobStatus;
        exit_description: string | null;
        done: string | null;
        running: string | null;
      }>(
        `SELECT e.status, e.exit_description,
                (SELECT d.id FROM batch.job_executions d
                  WHERE d.instance_id = e.instance_id AND d.status IN ('COMPLETED', 'ABANDONED') ORDER BY d.id LIMIT 1) AS done,
                (SELECT r.id FROM batch.job_executions r
                  WHERE r.instance_id = e.instance_id AND r.status IN ('STARTING', 'STARTED', 'STOPPING') ORDER BY r.id LIMIT 1) AS running
           FROM batch.job_executions e WHERE e.id = $1 FOR UPDATE`,
        [id],
      );
      if (rows.length === 0) return null;
      const { status, exit_description, done, running } = rows[0];
      if ((status === 'FAILED' || status === 'STOPPED') && done === null && running === null)
        await endExecution(tx, id, null, { status: 'ABANDONED', code: status, description: exit_description });
      return { status, done, running };
    });
  }
}
