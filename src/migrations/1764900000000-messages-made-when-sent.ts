import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A chunk writes each notification as what it reports, not as its text: the ids of the client's operations it settled
 * (a multirange: a backlog written in bulk is a few runs of ids), the outcomes other than "completed, one row
 * affected" as JSON fragments by id (usually none), and its size, estimated. The text is made when the message is
 * sent, by batch.settled_message, on the relay's connection: writing it with the chunk took a quarter of a large
 * chunk's time (the text made by the worker, sent as a parameter, written to TOAST and WAL), all on the path of the
 * next chunk, where making it takes another backend's time instead.
 *
 * A message reports what the operation was when it settled: its outcome, if not the plain one, is in the message
 * itself (a retry later deletes the outcome row), and the rest (target, type, idempotency key, label) is never
 * updated. Retention makes a message not sent yet into its text before the operations it reports go. Messages written
 * before this migration keep their text (payload), which is sent as it is.
 */
export class MessagesMadeWhenSent1764900000000 implements MigrationInterface {
  name = 'MessagesMadeWhenSent1764900000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(
      `ALTER TABLE batch.outbox ADD COLUMN operations int8multirange, ADD COLUMN exceptions jsonb, ADD COLUMN size integer`,
    );
    await db.query(`
      CREATE FUNCTION batch.settled_message(message batch.outbox) RETURNS text LANGUAGE sql STABLE AS $$
        SELECT '{"type":"operations.settled","client":' || to_json(c.name)::text || ',"executionId":"' || e.id
            || '","settledAt":"' || to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","operations":['
            || coalesce((
                 SELECT string_agg('{"id":"' || o.id || '",'
                                   || coalesce(message.exceptions ->> o.id::text, '"status":"COMPLETED","rowsAffected":1,"error":null')
                                   || ',"target":' || to_json(o.target)::text || ',"type":"' || o.type || '","idempotencyKey":'
                                   || coalesce(to_json(o.idempotency_key)::text, 'null') || ',"label":'
                                   || coalesce(to_json(o.label)::text, 'null') || '}',
                                   ',' ORDER BY o.id)
                   FROM unnest(message.operations) AS r(ids)
                   JOIN batch.operations o ON o.id >= lower(r.ids) AND o.id < upper(r.ids)), '')
            || ']}'
          FROM batch.clients c, batch.executions e
         WHERE c.id = message.client_id AND e.id = message.execution_id
      $$`);
  }

  async down(): Promise<void> {
    throw new Error('MessagesMadeWhenSent cannot be reverted: restore a backup taken before the upgrade');
  }
}
