import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Settling an operation updates its row, and a non-HOT update inserts into every index of the table. Two indexes
 * whose every settled row paid for them go: listing by status uses a partial index of FAILED rows only (the
 * others are found through the client and primary keys), and retention walks the primary key (ids grow with
 * time). The outbox payload is stored as `json` (kept as text, not decomposed): it is only ever published whole.
 */
export class LighterSettlement1763900000000 implements MigrationInterface {
  name = 'LighterSettlement1763900000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX batch.operations_status`);
    await db.query(`DROP INDEX batch.operations_settled`);
    await db.query(`CREATE INDEX operations_failed ON batch.operations (id DESC) WHERE status = 'FAILED'`);
    await db.query(`ALTER TABLE batch.outbox ALTER COLUMN payload TYPE json`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.outbox ALTER COLUMN payload TYPE jsonb`);
    await db.query(`DROP INDEX batch.operations_failed`);
    await db.query(`CREATE INDEX operations_settled ON batch.operations (settled_at) WHERE status <> 'PENDING'`);
    await db.query(`CREATE INDEX operations_status ON batch.operations (status, id DESC)`);
  }
}
