import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Imports (docs/jobs.md#import): an uploaded data set is kept in PostgreSQL, where every worker can read it, so
 * nothing else needs sharing. A file is one client's, known by the sha256 of its body as sent (an upload of the same
 * bytes again finds it, and must send them as it did, compressed or not); its bytes, decompressed, are kept in blocks addressed by their first byte's offset, so a
 * chunk (or a restart) reads only the blocks it needs. The blocks are stored uncompressed (EXTERNAL): they are read
 * once or twice and written once, and compressing them would cost more than it saves.
 */
export class Imports1766200000000 implements MigrationInterface {
  name = 'Imports1766200000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.import_files (
        id bigserial PRIMARY KEY,
        client_id bigint NOT NULL REFERENCES batch.clients (id),
        sha256 text NOT NULL,
        gzip boolean NOT NULL,
        bytes bigint NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT import_files_sha256 UNIQUE (client_id, sha256)
      );
      CREATE TABLE batch.import_blocks (
        file_id bigint NOT NULL REFERENCES batch.import_files (id) ON DELETE CASCADE,
        byte_offset bigint NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (file_id, byte_offset)
      );
      ALTER TABLE batch.import_blocks ALTER COLUMN data SET STORAGE EXTERNAL`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE batch.import_blocks, batch.import_files`);
  }
}
