import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Runs of a stream's inserts and upserts, recorded when they are stored: a flush's operations of one target, priority,
 * client and shape with consecutive ids, a row each. The claim reads a backlog's lead from them (batch.run_lead)
 * instead of reading each of its operations to learn that they make one run.
 */
export class StreamRuns1766480000000 implements MigrationInterface {
  name = 'StreamRuns1766480000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.stream_runs (
        target text NOT NULL,
        priority smallint NOT NULL,
        last_id bigint NOT NULL,
        first_id bigint NOT NULL,
        client_id bigint NOT NULL,
        shape text NOT NULL,
        bytes bigint NOT NULL,
        chars bigint NOT NULL,
        PRIMARY KEY (target, priority, last_id));
      COMMENT ON TABLE batch.stream_runs IS ${literal(DESCRIPTION)};
      COMMENT ON COLUMN batch.stream_runs.bytes IS 'The size of its operations'' values, summed (pg_column_size).';
      COMMENT ON COLUMN batch.stream_runs.chars IS 'The length of its operations'' idempotency keys and labels as JSON, summed.'`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE batch.stream_runs`);
  }
}

const DESCRIPTION =
  'Runs of pending inserts and upserts: operations of one stream, client and shape, stored by one flush with consecutive ids (first_id to last_id, all of them). Written by ingest; a cancel deletes the run of its operation, a chunk the runs its stream moved past. The claim reads a lead from them, not from its operations.';

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
