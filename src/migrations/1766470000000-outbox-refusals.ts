import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A message the broker refused (a caller's queue full and set to reject publishes, say) is tried again after a
 * back-off of its own, while the messages after it go on: refused, it would otherwise head every batch and hold back
 * every caller's notifications.
 */
export class OutboxRefusals1766470000000 implements MigrationInterface {
  name = 'OutboxRefusals1766470000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE batch.outbox ADD COLUMN refusals integer NOT NULL DEFAULT 0, ADD COLUMN retry_at timestamptz;
      COMMENT ON COLUMN batch.outbox.refusals IS 'How many times the broker refused the message (a negative confirm).';
      COMMENT ON COLUMN batch.outbox.retry_at IS ${literal(RETRY_AT)}`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.outbox DROP COLUMN refusals, DROP COLUMN retry_at`);
  }
}

const RETRY_AT =
  'A refused message is not published again before then (a back-off doubling with each refusal, up to 5 minutes); the relay publishes the messages after it meanwhile.';

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
