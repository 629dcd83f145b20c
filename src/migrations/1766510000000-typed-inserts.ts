import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Inserts' values kept typed beside their JSON (src/migrations/definitions/typed-inserts.sql): the register of each
 * target's stage. The stages themselves are made at ingest, as targets are first written.
 */
export class TypedInserts1766510000000 implements MigrationInterface {
  name = 'TypedInserts1766510000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.typed_targets (
        target text NOT NULL,
        stage text,
        columns text[],
        types text[],
        CONSTRAINT typed_targets_pkey PRIMARY KEY (target));
      COMMENT ON TABLE batch.typed_targets IS ${literal(DESCRIPTION)}`);
  }

  async down(db: QueryRunner): Promise<void> {
    for (const { stage } of (await db.query(`SELECT stage FROM batch.typed_targets WHERE stage IS NOT NULL`)) as {
      stage: string;
    }[])
      await db.query(`DROP TABLE IF EXISTS ${stage}`);
    await db.query(`DROP TABLE batch.typed_targets CASCADE`);
  }
}

const DESCRIPTION =
  "Each target written by inserts, with the stage that keeps their values in the target's types (an unlogged table in the schema batch; NULL where the target's types are not kept so) and the target's columns and types it was made for. Written at ingest (batch.typed_stage), read by the writer; retention empties the stages of operations taken and drops stages no longer named here.";

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
