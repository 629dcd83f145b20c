import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every table of the schema says what it is for and who writes and reads it (COMMENT ON TABLE), so that psql's `\dt+`
 * and docs/schema.sql answer that without the code. A table added later gets its comment in the migration that
 * creates it (the schema's test refuses one without). The views and functions are commented in their definitions.
 */
const DESCRIPTIONS: Record<string, string> = {
  clients:
    "The callers of the service: each one's API key (hashed), the targets it may write, the tables its copies may read, its rate limit and whether it is an admin. Written by the admin API (and an operator's SQL), revoked but never deleted; read when a caller is authenticated and by every chunk (batch.client_grants).",
  operations:
    "What callers sent, one operation a row, written once at ingest and never updated; retention deletes it. A target's operations of one priority are a stream, in order of id, which the claim reads through operations_stream.",
  requests:
    "Each request that brought operations, recorded once at ingest with the range of its operations' ids, so that a request delivered again finds what it stored and stores nothing again. Retention deletes it with the operations of its time.",
  streams:
    'Per stream (a target and a priority), the id up to which chunks have taken its operations. Ingest adds a stream it meets first; a chunk moves its position on when it records what it took, in the same transaction.',
  deferred:
    "The pending operations that do not flow in their stream's order of id: scheduled ahead (due_at), retried, or held back after their chunk failed as a whole, with what the claim needs of them. Written by ingest, retries and failed chunks; the claim merges the due ones into their streams, and a chunk that took one, or a cancel, deletes it.",
  holds:
    'Targets kept out of claims for a while after a chunk of theirs failed as a whole or waited past the lock timeout, with how many operations their next chunk takes and how many such waits in a row. Written and released by the chunks, read by the chunk reader.',
  chunks:
    "The queue's chunks, one transaction each: status, worker, Spring Batch's counters and times, written when the chunk is recorded (a chunk's id is what the API calls an execution id). Read through GET /api/executions (the dashboard too); retention deletes it.",
  chunk_steps:
    'The statements of a chunk, a row each (its target and type), with their counters, status and exit message, written with the chunk; GET /api/executions/:id shows them.',
  chunk_clients:
    "Which clients' operations each chunk settled, written with its outcomes, so that a client's chunks are listed through the primary key (GET /api/executions).",
  outcomes:
    'How an operation settled, where not completed plainly: FAILED, CANCELLED, rows affected other than one, or after a retry; one row each, inserted by chunks, cancels and revocations, deleted by a retry or retention. Read through batch.operation_states; its triggers keep batch.operation_counts.',
  settled_runs:
    "The operations a chunk completed plainly (one row affected, first attempt) as runs of consecutive ids, a row per run, never overlapping; inserted by the chunk's record. Read through batch.operation_states; retention deletes them with their operations.",
  outbox:
    'Messages to publish, written in the transaction of what they report: operations.settled by each chunk (the ids it settled and the outcomes other than plain completion, made into text when sent by batch.settled_message) and job.finished by batch.job_finished. The outbox relay publishes them in order of id and marks them sent; retention deletes sent ones.',
  job_instances:
    "A job and its identifying parameters, for one client (Spring Batch's job instance), unique by their identity. Inserted or locked by batch.launch_job; read by the jobs API and the job workers.",
  job_executions:
    'Each launch of a job instance: status, exit status, options, times, and the lease of the worker running it. Created by batch.launch_job, moved on by the worker holding the lease, the jobs API (stop, abandon) and the reaping of lost leases; read by the jobs API.',
  step_executions:
    "The steps of a job execution, and the partitions of a partitioned step, with Spring Batch's counters, the reader's position (execution_context) and a lease of their own. Written by the job workers as a step starts and as each of its chunks commits; read by the jobs API and batch.job_finished.",
  job_rejects:
    "The records a job's step skipped (line, byte offset, column, code, message, the record), written with the chunk that skipped them; read by GET /api/jobs/executions/:id/rejects.",
  job_schedules:
    'Schedules that launch a job as their client at each tick of a cron expression, with the next tick. Written by the admin API (/api/jobs/schedules); the worker that launches due ticks locks a row and moves its next tick on.',
  import_files:
    "Uploaded data sets, one client's each, known by the sha256 of the body as sent; written by the upload in its transaction, read by import jobs. Retention deletes one past its age once no import of it runs.",
  import_blocks:
    "The bytes of an uploaded data set, decompressed, in blocks addressed by their first byte's offset and stored uncompressed; written by the upload, read by an import's chunks (only the blocks each needs).",
  operation_counts:
    "Counts of operations by client, target, status and minute, added as rows (added, removed) by the statements that change a status and by the outcomes' triggers, never updated in place; retention folds them, keeping the last 15 minutes per minute. Read by /api/stats, the dashboard and the metrics.",
  migrations:
    "TypeORM's record of the migrations applied (src/migrations), a row each, written as the service runs those not applied yet at start.",
  definitions:
    'The checksum of the definitions applied last (src/migrations/definitions), one row: the service applies them again at start when the files differ.',
};

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

export class TablesDescribed1766300000000 implements MigrationInterface {
  name = 'TablesDescribed1766300000000';

  async up(db: QueryRunner): Promise<void> {
    for (const [table, description] of Object.entries(DESCRIPTIONS))
      await db.query(`COMMENT ON TABLE batch.${table} IS ${literal(description)}`);
  }

  async down(db: QueryRunner): Promise<void> {
    for (const table of Object.keys(DESCRIPTIONS)) await db.query(`COMMENT ON TABLE batch.${table} IS NULL`);
  }
}
