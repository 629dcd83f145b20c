import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Chunks for targets in another database (BATCH_DATABASES), between their commits: claimed and recorded here first, so
 * that whoever finishes one (its worker, or another after the worker's lease ran out) applies exactly these
 * operations; applied there with a row of that database's ledger (batch_ledger.applied_chunks, keyed by this queue's
 * id and the chunk's); settled here, which deletes the row. While one is here its targets are not claimed and its
 * operations cannot be cancelled.
 */
export class PreparedChunks1766450000000 implements MigrationInterface {
  name = 'PreparedChunks1766450000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.queue (id uuid NOT NULL DEFAULT gen_random_uuid(), single boolean PRIMARY KEY DEFAULT true CHECK (single));
      INSERT INTO batch.queue DEFAULT VALUES;
      COMMENT ON TABLE batch.queue IS 'This queue''s id, which the ledgers of other databases key its chunks by.';
      CREATE TABLE batch.prepared_chunks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        database text NOT NULL,
        targets text[] NOT NULL,
        operations int8multirange NOT NULL,
        claimed text NOT NULL,
        worker text NOT NULL,
        attempts int NOT NULL DEFAULT 0,
        prepared_at timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz NOT NULL);
      COMMENT ON TABLE batch.prepared_chunks IS ${literal(DESCRIPTION)};
      COMMENT ON COLUMN batch.prepared_chunks.claimed IS 'The chunk''s operations as claimed, a line each (ChunkClaimer''s format).';
      COMMENT ON COLUMN batch.prepared_chunks.lease_until IS 'Until when its worker holds it; after that any worker finishes it.'`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE batch.prepared_chunks; DROP TABLE batch.queue`);
  }
}

const DESCRIPTION =
  'Chunks for targets in another database between their commits: claimed here, applied there with a ledger row, settled here (which deletes the row). Their targets are not claimed and their operations not cancelled meanwhile; a chunk whose lease ran out is finished by any worker, from the ledger where it was applied.';

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
