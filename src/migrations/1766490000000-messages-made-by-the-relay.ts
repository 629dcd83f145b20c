import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A chunk writes each notification as runs of ids with the target and type they share (batch.outbox.runs), and the
 * relay makes its text in JavaScript, reading from the database only what the runs do not say (batch.settled_parts:
 * the client's name, the chunk, the operations with an idempotency key or a label). Making the text in PostgreSQL
 * from each operation's row, and sending it, took the database as much time as the chunks' own statements during a
 * drain of inserts. Messages not sent yet are made into their text here, as the function that made them until now
 * did (batch.settled_message, which goes with the multirange of ids it read).
 */
export class MessagesMadeByTheRelay1766490000000 implements MigrationInterface {
  name = 'MessagesMadeByTheRelay1766490000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      UPDATE batch.outbox message SET payload = (
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
          FROM batch.clients c, batch.chunks e
         WHERE c.id = message.client_id AND e.id = message.chunk_id)
       WHERE payload IS NULL AND sent_at IS NULL`);
    await db.query(`DROP FUNCTION IF EXISTS batch.settled_message(batch.outbox)`);
    await db.query(`ALTER TABLE batch.outbox DROP COLUMN operations, ADD COLUMN runs jsonb`);
    await db.query(`
      COMMENT ON TABLE batch.outbox IS ${literal(DESCRIPTION)};
      COMMENT ON COLUMN batch.outbox.runs IS ${literal(RUNS)}`);
  }

  async down(): Promise<void> {
    throw new Error('MessagesMadeByTheRelay cannot be reverted: restore a backup taken before the upgrade');
  }
}

const DESCRIPTION =
  'Messages to publish, written in the transaction of what they report: operations.settled by each chunk (its runs of operations and the outcomes other than plain completion, made into text when sent) and job.finished by batch.job_finished (payload). The outbox relay publishes them in order of id and marks them sent; retention deletes sent ones.';
const RUNS =
  "An operations.settled message's operations in order of id, as [first id, last id, target, type] (type null where not known); its text is made from them and batch.settled_parts.";

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
