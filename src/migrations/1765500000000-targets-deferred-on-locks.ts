import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A target whose statements waited past the lock timeout for a row locked elsewhere is held back without counting a
 * failure against its operations, longer each time in a row: batch.holds counts those times.
 */
export class TargetsDeferredOnLocks1765500000000 implements MigrationInterface {
  name = 'TargetsDeferredOnLocks1765500000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.holds ADD COLUMN deferrals integer NOT NULL DEFAULT 0`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.holds DROP COLUMN deferrals`);
  }
}
