import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import type { IJobReject, JobStatus } from '../../../interfaces/job.interfaces';
import { stringifyJson } from '../../exact-json';
import type { StepCounts } from '../../step-counts';
import { Database } from '../../storage/database';
import type { Partition } from '../job-definition';
import { Ending, LeaseLost, StepRow } from './job-rows';

export const STEP_COLUMNS = `s.id, s.job_execution_id, s.name, s.partition, s.status, s.exit_code, s.exit_description,
  s.execution_context, (s.read_skip_count + s.process_skip_count + s.write_skip_count)::float8 AS skips, s.outages`;

/**
 * What a chunk that went past the skip limit had skipped: recorded as its step ends, though the chunk rolled back, so
 * that the rejects that failed the step are listed and counted.
 */
export interface SkippedAtEnd {
  counts: Pick<StepCounts, 'readSkipCount' | 'processSkipCount' | 'writeSkipCount'>;
  rejects: IJobReject[];
}

/** Where a partition of a step is, and why it failed. */
export interface PartitionStatus {
  partition: string;
  status: JobStatus;
  description: string | null;
}

/** The steps and partitions of running executions, as the runner moves them on chunk by chunk. */
@Injectable()
export class StepExecutions {
  constructor(private readonly db: Database) {}

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
    const rows = await this.db.query(
      `UPDATE batch.step_executions s SET lease_owner = $2, lease_until = e.lease_until
         FROM batch.job_executions e
        WHERE s.id = $1 AND e.id = s.job_execution_id AND e.lease_owner = $2 RETURNING 1`,
      [step.id, owner],
    );
    if (rows.length === 0) throw new LeaseLost();
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

  /**
   * Saves a chunk's counts, the step's position and the chunk's rejects, in the chunk's transaction; `updated_at` is
   * when the chunk's work was done (not when its transaction began), what the progress's rate is measured to.
   */
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
                    rollback_count = rollback_count + $8, execution_context = $9::text::jsonb, outages = 0,
                    updated_at = clock_timestamp()
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
    await saveRejects(tx, step, rejects);
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

  /** Ends a step or partition held by `owner`, with what a chunk past the skip limit skipped (`skipped`). */
  async endStep(step: StepRow, owner: string, ending: Ending, skipped?: SkippedAtEnd): Promise<void> {
    const skips = skipped?.counts ?? { readSkipCount: 0, processSkipCount: 0, writeSkipCount: 0 };
    await this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE batch.step_executions
            SET status = $3, exit_code = $4, exit_description = left($5, 2000), ended_at = now(), lease_owner = NULL,
                lease_until = NULL, updated_at = now(), read_skip_count = read_skip_count + $6,
                process_skip_count = process_skip_count + $7, write_skip_count = write_skip_count + $8
          WHERE id = $1 AND lease_owner = $2`,
        [
          step.id,
          owner,
          ending.status,
          ending.code,
          ending.description,
          skips.readSkipCount,
          skips.processSkipCount,
          skips.writeSkipCount,
        ],
      );
      if (!rowCount) throw new LeaseLost();
      await saveRejects(tx, step, skipped?.rejects ?? []);
    });
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
}

/** A step's rejects, in the transaction that saves its chunk (or ends it). */
async function saveRejects(tx: PoolClient, step: StepRow, rejects: IJobReject[]): Promise<void> {
  if (rejects.length === 0) return;
  await tx.query(
    `INSERT INTO batch.job_rejects (job_execution_id, step, line, byte_offset, column_name, code, message, record)
     SELECT $1, $2, r.line, r."byteOffset", r."column", r.code, r.message, r.record
       FROM jsonb_to_recordset($3::text::jsonb)
         AS r(line bigint, "byteOffset" bigint, "column" text, code text, message text, record text)`,
    [step.job_execution_id, step.name, JSON.stringify(rejects)],
  );
}
