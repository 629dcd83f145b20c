import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * batch.settled_event builds each operation of a notification as a record of a declared type (its fields named as
 * CONTRACT.md names them), which json_agg turns into JSON directly, instead of a json_build_object call per
 * operation: the same message, made with about a fifth less database time (measured: 200,000 operations in
 * notifications of 20,000, 1.1 s instead of 1.3-1.5 s). The relay makes them while chunks are applied, on the same
 * database, so that time came out of the drain.
 */
export class SettledEventRecords1764600000000 implements MigrationInterface {
  name = 'SettledEventRecords1764600000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TYPE batch.settled_operation AS (
        id text, status text, "rowsAffected" integer, error json, target text, type text, "idempotencyKey" text, label text)`);
    await db.query(
      settledEvent(`ROW(o.id::text, oc.status, oc.rows_affected, ${ERROR}, o.target, o.type, o.idempotency_key, o.label)
                    ::batch.settled_operation`),
    );
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(
      settledEvent(`json_build_object(
                      'id', o.id::text, 'status', oc.status, 'rowsAffected', oc.rows_affected, 'error', ${ERROR},
                      'target', o.target, 'type', o.type, 'idempotencyKey', o.idempotency_key, 'label', o.label)`),
    );
    await db.query(`DROP TYPE batch.settled_operation`);
  }
}

const ERROR = `CASE WHEN oc.error_code IS NULL THEN NULL ELSE json_build_object('code', oc.error_code, 'message', oc.error_message) END`;

/** The notification of an outbox row, each of its operations made into JSON by `operation` (over `o` and `oc`). */
function settledEvent(operation: string): string {
  return `
    CREATE OR REPLACE FUNCTION batch.settled_event(outbox_id bigint) RETURNS json LANGUAGE sql STABLE AS $$
      SELECT json_build_object(
               'type', 'operations.settled', 'client', c.name, 'executionId', ob.execution_id::text,
               'settledAt', to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               'operations', coalesce((
                 SELECT json_agg(${operation} ORDER BY o.id)
                   FROM unnest(ob.ids) AS i(id)
                   JOIN batch.operations o ON o.id = i.id
                   JOIN batch.outcomes oc ON oc.operation_id = i.id AND oc.execution_id = ob.execution_id), '[]'))
        FROM batch.outbox ob JOIN batch.clients c ON c.id = ob.client_id JOIN batch.executions e ON e.id = ob.execution_id
       WHERE ob.id = outbox_id
    $$`;
}
