import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The chunk reader's id horizon in one round trip (see ChunkReader): the last id allocated, read before waiting
 * for every ingest transaction that may still hold an id at or below it (they hold the ingest lock shared).
 */
export class IngestHorizon1764000000000 implements MigrationInterface {
  name = 'IngestHorizon1764000000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE FUNCTION batch.ingest_horizon(ingest_lock bigint) RETURNS bigint LANGUAGE plpgsql AS $$
      DECLARE
        horizon bigint;
      BEGIN
        SELECT last_value INTO horizon FROM batch.operations_id_seq;
        PERFORM pg_advisory_lock(ingest_lock);
        PERFORM pg_advisory_unlock(ingest_lock);
        RETURN horizon;
      END $$`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP FUNCTION batch.ingest_horizon(bigint)`);
  }
}
