import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A chunk records the operations it completed plainly as runs of consecutive ids instead of a row each: a run
 * [first_id, last_id] says that every operation with an id in it completed in that execution, affecting one row, on
 * its first attempt. Inserting one narrow outcome row per operation (the row, its index entries and their WAL) cost
 * more than a third of a drained insert's database time; a backlog written in bulk settles as a few runs per chunk. Every other outcome (FAILED, CANCELLED,
 * rows affected other than one, a retried operation) keeps its row in batch.outcomes, which stays as it is: the rows
 * already there remain each operation's outcome.
 *
 * Runs never overlap (an operation settles in a run at most once: completed is final, and only FAILED operations are
 * retried), so the run of an id is the one with the greatest first_id not after it, if its last_id reaches it.
 * Their counts are added to batch.operation_counts by the chunk that writes them and by retention.
 */
export class SettledRuns1764800000000 implements MigrationInterface {
  name = 'SettledRuns1764800000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.settled_runs (
        first_id bigint PRIMARY KEY,
        last_id bigint NOT NULL CHECK (last_id >= first_id),
        execution_id bigint NOT NULL,
        settled_at timestamptz NOT NULL
      )`);
    await db.query(`
      CREATE OR REPLACE VIEW batch.operation_states AS
      SELECT o.id, o.client_id, o.target, o.type, o.row_values, o.row_key, o.conflict_key, o.idempotency_key, o.request_key, o.label,
             o.priority, o.not_before, o.created_at,
             CASE WHEN p.id IS NOT NULL THEN 'PENDING' WHEN oc.operation_id IS NOT NULL THEN oc.status WHEN r.execution_id IS NOT NULL THEN 'COMPLETED' END AS status,
             coalesce(p.attempts, oc.attempts, CASE WHEN r.execution_id IS NOT NULL THEN 1 END, 0) AS attempts,
             coalesce(oc.rows_affected, CASE WHEN r.execution_id IS NOT NULL THEN 1 END) AS rows_affected,
             oc.error_code, oc.error_message, coalesce(oc.execution_id, r.execution_id) AS execution_id,
             coalesce(oc.settled_at, r.settled_at, o.created_at) AS updated_at, coalesce(oc.settled_at, r.settled_at) AS settled_at
        FROM batch.operations o
        LEFT JOIN batch.pending p ON p.id = o.id
        LEFT JOIN batch.outcomes oc ON oc.operation_id = o.id
        LEFT JOIN LATERAL (
          SELECT last.execution_id, last.settled_at
            FROM (SELECT * FROM batch.settled_runs r WHERE r.first_id <= o.id ORDER BY r.first_id DESC LIMIT 1) last
           WHERE last.last_id >= o.id) r ON true`);
  }

  async down(): Promise<void> {
    throw new Error('SettledRuns cannot be reverted: restore a backup taken before the upgrade');
  }
}
