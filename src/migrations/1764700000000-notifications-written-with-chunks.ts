import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A chunk writes each client's notification whole, as text made by the worker from what it already holds, instead of
 * a reference to the operations that the relay made into a message in PostgreSQL (batch.settled_event). Building the
 * message there, joining every operation to its outcome and its row, took more of the database than the chunk's own
 * target INSERT while a backlog drained.
 * - The pending set keeps each operation's idempotency key and label (usually none), the only fields of a notification
 *   the worker did not have.
 * - The payload is text: it is only ever published whole, and json would parse the text to check it.
 * - Unsent references are made into their message now, and the references (ids) and batch.settled_event go.
 */
export class NotificationsWrittenWithChunks1764700000000 implements MigrationInterface {
  name = 'NotificationsWrittenWithChunks1764700000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.pending ADD COLUMN idempotency_key text, ADD COLUMN label text`);
    await db.query(`
      UPDATE batch.pending p SET idempotency_key = o.idempotency_key, label = o.label
        FROM batch.operations o
       WHERE o.id = p.id AND (o.idempotency_key IS NOT NULL OR o.label IS NOT NULL)`);
    await db.query(`ALTER TABLE batch.outbox ALTER COLUMN payload TYPE text`);
    await db.query(
      `UPDATE batch.outbox SET payload = batch.settled_event(id)::text WHERE payload IS NULL AND sent_at IS NULL`,
    );
    await db.query(`ALTER TABLE batch.outbox DROP COLUMN ids`);
    await db.query(`DROP FUNCTION batch.settled_event(bigint)`);
  }

  async down(): Promise<void> {
    throw new Error('NotificationsWrittenWithChunks cannot be reverted: restore a backup taken before the upgrade');
  }
}
