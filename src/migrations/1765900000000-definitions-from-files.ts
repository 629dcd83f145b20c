import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The long-lived functions and views of the schema are defined in src/migrations/definitions/*.sql, applied after the
 * migrations whenever those files changed (applyDefinitions): batch.definitions records what was applied last.
 */
export class DefinitionsFromFiles1765900000000 implements MigrationInterface {
  name = 'DefinitionsFromFiles1765900000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(
      `CREATE TABLE batch.definitions (checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE batch.definitions`);
  }
}
