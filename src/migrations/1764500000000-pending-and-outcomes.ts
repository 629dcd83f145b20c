import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The queue apart from the operations' payloads and history, so that neither the claim nor settlement touches a
 * wide row:
 * - batch.operations holds what callers sent, written once at create and never updated (retention deletes it);
 * - batch.pending is the pending set, one narrow row per PENDING operation: a chunk claims by deleting from it, in
 *   index order per target (pending_due); operations scheduled ahead (due_at) are outside that index until a
 *   claim promotes them, so any number of them costs the claim nothing;
 * - batch.outcomes records, insert-only, how each operation settled (COMPLETED, FAILED, CANCELLED); a retry deletes
 *   the outcome and puts the operation back into the pending set;
 * - batch.holds keeps a target out of claims while a chunk of it that failed as a whole waits to be retried, and
 *   says how many of its operations the next chunk takes (fewer and fewer, once retries are spent).
 * An operation's status is PENDING while it is in the pending set, else its outcome's (view batch.operation_states).
 * The pending set keeps each operation's planning (shape, identity), so that a claim reads nothing else.
 * The counts of batch.operation_counts are kept by triggers on the pending set and the outcomes instead (a claim, an
 * outcome, a cancel or a retry each count as one status left and one entered, as before).
 */
export class PendingAndOutcomes1764500000000 implements MigrationInterface {
  name = 'PendingAndOutcomes1764500000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.pending (
        id bigint PRIMARY KEY,
        client_id bigint NOT NULL,
        target text NOT NULL,
        priority smallint NOT NULL,
        due_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        failures integer NOT NULL DEFAULT 0,
        bytes integer NOT NULL DEFAULT 0,
        shape text NOT NULL,
        identity text NOT NULL
      )`);
    await db.query(`CREATE INDEX pending_due ON batch.pending (target, priority DESC, id) WHERE due_at IS NULL`);
    await db.query(`CREATE INDEX pending_scheduled ON batch.pending (due_at) WHERE due_at IS NOT NULL`);
    await db.query(
      `ALTER TABLE batch.pending SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01)`,
    );
    await db.query(`
      CREATE TABLE batch.outcomes (
        operation_id bigint PRIMARY KEY,
        client_id bigint NOT NULL,
        target text NOT NULL,
        status text NOT NULL CHECK (status IN ('COMPLETED', 'FAILED', 'CANCELLED')),
        attempts integer NOT NULL,
        rows_affected integer,
        error_code text,
        error_message text,
        execution_id bigint,
        settled_at timestamptz NOT NULL
      )`);
    await db.query(`CREATE INDEX outcomes_failed ON batch.outcomes (operation_id DESC) WHERE status = 'FAILED'`);
    await db.query(`CREATE INDEX outcomes_cancelled ON batch.outcomes (operation_id DESC) WHERE status = 'CANCELLED'`);
    await db.query(
      `CREATE TABLE batch.holds (target text PRIMARY KEY, until timestamptz NOT NULL, chunk_size integer NOT NULL)`,
    );

    await db.query(`
      INSERT INTO batch.pending (id, client_id, target, priority, due_at, attempts, bytes, shape, identity)
      SELECT id, client_id, target, priority, CASE WHEN not_before > now() THEN not_before END, attempts, coalesce(pg_column_size(row_values), 0),
             coalesce(shape, batch.shape_of(type, row_values, row_key, conflict_key)), coalesce(identity, '')
        FROM batch.operations WHERE status = 'PENDING'`);
    await db.query(`
      INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, rows_affected, error_code, error_message, execution_id, settled_at)
      SELECT id, client_id, target, status, attempts, rows_affected, error_code, error_message, execution_id, coalesce(settled_at, updated_at)
        FROM batch.operations WHERE status <> 'PENDING'`);

    // Counts: the same rows of batch.operation_counts, now added by the pending set (PENDING) and the outcomes.
    for (const trigger of ['count_inserts', 'count_updates', 'count_deletes', 'count_truncates'])
      await db.query(`DROP TRIGGER ${trigger} ON batch.operations`);
    await db.query(`DROP FUNCTION batch.count_operation_changes()`);
    // One function per table, each counting inserts, deletes, the net change of updates, and truncation.
    const counted = { pending: `'PENDING'`, outcomes: 'status' };
    for (const [table, status] of Object.entries(counted)) {
      await db.query(`
        CREATE FUNCTION batch.count_${table}_changes() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'TRUNCATE' THEN
            DELETE FROM batch.operation_counts WHERE (status = 'PENDING') = ${table === 'pending'};
          ELSIF TG_OP = 'INSERT' THEN
            INSERT INTO batch.operation_counts
            SELECT client_id, target, ${status}, date_trunc('minute', now()), count(*), 0 FROM new_rows GROUP BY 1, 2, 3;
          ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO batch.operation_counts
            SELECT client_id, target, ${status}, date_trunc('minute', now()), 0, count(*) FROM old_rows GROUP BY 1, 2, 3;
          ELSE
            INSERT INTO batch.operation_counts
            SELECT client_id, target, status, date_trunc('minute', now()), greatest(sum(n), 0), greatest(-sum(n), 0)
              FROM (SELECT client_id, target, ${status} AS status, 1 AS n FROM new_rows
                    UNION ALL SELECT client_id, target, ${status}, -1 FROM old_rows) change
             GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
          END IF;
          RETURN NULL;
        END $$`);
      const count = `FOR EACH STATEMENT EXECUTE FUNCTION batch.count_${table}_changes()`;
      await db.query(
        `CREATE TRIGGER count_inserts AFTER INSERT ON batch.${table} REFERENCING NEW TABLE AS new_rows ${count}`,
      );
      await db.query(
        `CREATE TRIGGER count_updates AFTER UPDATE ON batch.${table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows ${count}`,
      );
      await db.query(
        `CREATE TRIGGER count_deletes AFTER DELETE ON batch.${table} REFERENCING OLD TABLE AS old_rows ${count}`,
      );
      await db.query(`CREATE TRIGGER count_truncates AFTER TRUNCATE ON batch.${table} ${count}`);
    }

    // Notifications are written with the chunk as references (the client's operations in the execution) and made into
    // their message when the relay publishes them (batch.settled_event), off the chunk's path; a reference whose
    // outcomes are about to change (a retry) gets its message first.
    await db.query(
      `ALTER TABLE batch.outbox ALTER COLUMN payload DROP NOT NULL, ADD COLUMN execution_id bigint, ADD COLUMN client_id bigint, ADD COLUMN ids bigint[]`,
    );
    await db.query(`ALTER TABLE batch.outbox ALTER COLUMN payload SET STORAGE EXTERNAL`);
    await db.query(`
      CREATE FUNCTION batch.settled_event(outbox_id bigint) RETURNS json LANGUAGE sql STABLE AS $$
        SELECT json_build_object(
                 'type', 'operations.settled', 'client', c.name, 'executionId', ob.execution_id::text,
                 'settledAt', to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                 'operations', coalesce((
                   SELECT json_agg(json_build_object(
                            'id', o.id::text, 'status', oc.status, 'rowsAffected', oc.rows_affected,
                            'error', CASE WHEN oc.error_code IS NULL THEN NULL ELSE json_build_object('code', oc.error_code, 'message', oc.error_message) END,
                            'target', o.target, 'type', o.type, 'idempotencyKey', o.idempotency_key, 'label', o.label) ORDER BY o.id)
                     FROM unnest(ob.ids) AS i(id)
                     JOIN batch.operations o ON o.id = i.id
                     JOIN batch.outcomes oc ON oc.operation_id = i.id AND oc.execution_id = ob.execution_id), '[]'))
          FROM batch.outbox ob JOIN batch.clients c ON c.id = ob.client_id JOIN batch.executions e ON e.id = ob.execution_id
         WHERE ob.id = outbox_id
      $$`);

    await db.query(`DROP INDEX batch.operations_pending`);
    await db.query(`DROP INDEX batch.operations_failed`);
    await db.query(`
      ALTER TABLE batch.operations DROP COLUMN status, DROP COLUMN attempts, DROP COLUMN rows_affected, DROP COLUMN error_code,
        DROP COLUMN error_message, DROP COLUMN execution_id, DROP COLUMN updated_at, DROP COLUMN settled_at`);
    await db.query(
      `ALTER TABLE batch.operations RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor)`,
    );

    // Each operation as callers see it: for the service's reads, and for whoever looks in with psql.
    await db.query(`
      CREATE VIEW batch.operation_states AS
      SELECT o.id, o.client_id, o.target, o.type, o.row_values, o.row_key, o.conflict_key, o.idempotency_key, o.request_key, o.label,
             o.priority, o.not_before, o.created_at,
             CASE WHEN p.id IS NOT NULL THEN 'PENDING' ELSE oc.status END AS status,
             coalesce(p.attempts, oc.attempts, 0) AS attempts,
             oc.rows_affected, oc.error_code, oc.error_message, oc.execution_id,
             coalesce(oc.settled_at, o.created_at) AS updated_at, oc.settled_at
        FROM batch.operations o
        LEFT JOIN batch.pending p ON p.id = o.id
        LEFT JOIN batch.outcomes oc ON oc.operation_id = o.id`);
  }

  async down(): Promise<void> {
    throw new Error('PendingAndOutcomes cannot be reverted: restore a backup taken before the upgrade');
  }
}
