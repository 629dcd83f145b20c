import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A target held back because another transaction holds a lock on its table (a migration, say) remembers that table,
 * so that the chunk reader takes it again as soon as no such lock is held or waited for, rather than at the end of
 * its hold.
 */
export class HoldsLockedRelation1766440000000 implements MigrationInterface {
  name = 'HoldsLockedRelation1766440000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE batch.holds ADD COLUMN locked_relation oid;
      COMMENT ON TABLE batch.holds IS ${literal(DESCRIPTION)}`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE batch.holds DROP COLUMN locked_relation;
      COMMENT ON TABLE batch.holds IS ${literal(PREVIOUS_DESCRIPTION)}`);
  }
}

const DESCRIPTION =
  'Targets kept out of claims for a while after a chunk of theirs failed as a whole or waited past the lock timeout, with how many operations their next chunk takes, how many such waits in a row, and the table whose lock another transaction held or waited for when the last wait ended (taken again as soon as that lock is gone). Written and released by the chunks, read by the chunk reader.';
const PREVIOUS_DESCRIPTION =
  'Targets kept out of claims for a while after a chunk of theirs failed as a whole or waited past the lock timeout, with how many operations their next chunk takes and how many such waits in a row. Written and released by the chunks, read by the chunk reader.';

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
