import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A request is recorded once, in batch.requests, instead of a unique request key on each of its operations: a
 * redelivered request finds its row and stores nothing again. Each operation refers to its request and its place in
 * it (request_ref, request_index), through an index of increasing numbers. The unique index of request keys cost a
 * bulk ingest much of its database time (its text keys at random places in a large index, and `ON CONFLICT DO NOTHING`
 * checking every unique index for each row).
 * The requests of the operations stored before are recorded from their request keys, which stay with them (what a
 * request redelivered across the upgrade stored is found by them).
 */
export class RequestsRecordedOnce1765000000000 implements MigrationInterface {
  name = 'RequestsRecordedOnce1765000000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.requests (
        id bigserial PRIMARY KEY,
        client_id bigint NOT NULL,
        request_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (client_id, request_id)
      )`);
    // The requests of the operations stored before, which may still be delivered again (a message left unacknowledged
    // waits for as long as the service is down): one pass over the request keys, `<request id>#<place>`.
    await db.query(`
      INSERT INTO batch.requests (client_id, request_id, created_at)
      SELECT client_id, substring(request_key FROM '^(.*)#[0-9]+$'), min(created_at)
        FROM batch.operations WHERE request_key ~ '#[0-9]+$' GROUP BY 1, 2 ORDER BY 3`);
    await db.query(`ALTER TABLE batch.operations ADD COLUMN request_ref bigint, ADD COLUMN request_index integer`);
    await db.query(`CREATE INDEX operations_request ON batch.operations (request_ref) WHERE request_ref IS NOT NULL`);
    await db.query(`
      CREATE OR REPLACE VIEW batch.operation_states AS
      SELECT o.id, o.client_id, o.target, o.type, o.row_values, o.row_key, o.conflict_key, o.idempotency_key, o.request_key, o.label,
             o.priority, o.not_before, o.created_at,
             CASE WHEN p.id IS NOT NULL THEN 'PENDING' WHEN oc.operation_id IS NOT NULL THEN oc.status WHEN r.execution_id IS NOT NULL THEN 'COMPLETED' END AS status,
             coalesce(p.attempts, oc.attempts, CASE WHEN r.execution_id IS NOT NULL THEN 1 END, 0) AS attempts,
             coalesce(oc.rows_affected, CASE WHEN r.execution_id IS NOT NULL THEN 1 END) AS rows_affected,
             oc.error_code, oc.error_message, coalesce(oc.execution_id, r.execution_id) AS execution_id,
             coalesce(oc.settled_at, r.settled_at, o.created_at) AS updated_at, coalesce(oc.settled_at, r.settled_at) AS settled_at,
             o.request_ref, o.request_index
        FROM batch.operations o
        LEFT JOIN batch.pending p ON p.id = o.id
        LEFT JOIN batch.outcomes oc ON oc.operation_id = o.id
        LEFT JOIN LATERAL (
          SELECT last.execution_id, last.settled_at
            FROM (SELECT * FROM batch.settled_runs r WHERE r.first_id <= o.id ORDER BY r.first_id DESC LIMIT 1) last
           WHERE last.last_id >= o.id) r ON true`);
  }

  async down(): Promise<void> {
    throw new Error('RequestsRecordedOnce cannot be reverted: restore a backup taken before the upgrade');
  }
}
