import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A chunk records in runs also the operations that completed on their first attempt affecting no row (an update or
 * delete of a row gone), each marked in its run's bitmap (batch.settled_runs.no_rows), where each was an outcome row of
 * its own: a stream that deletes rows already gone had thousands of them in a chunk.
 */
export class RunsMarkRowsMissed1766500000000 implements MigrationInterface {
  name = 'RunsMarkRowsMissed1766500000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE batch.settled_runs ADD COLUMN no_rows bytea;
      COMMENT ON TABLE batch.settled_runs IS ${literal(DESCRIPTION)};
      COMMENT ON COLUMN batch.settled_runs.no_rows IS ${literal(NO_ROWS)};
      COMMENT ON TABLE batch.outcomes IS ${literal(OUTCOMES)}`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`
      INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, rows_affected, chunk_id, settled_at)
      SELECT o.id, o.client_id, o.target, 'COMPLETED', 1, 0, r.chunk_id, r.settled_at
        FROM batch.settled_runs r JOIN batch.operations o ON o.id BETWEEN r.first_id AND r.last_id
       WHERE r.no_rows IS NOT NULL AND get_bit(r.no_rows, (o.id - r.first_id)::int) = 1;
      ALTER TABLE batch.settled_runs DROP COLUMN no_rows`);
  }
}

const DESCRIPTION =
  "The operations a chunk completed on their first attempt as runs of consecutive ids, a row per run, never overlapping; each affected one row, or none where its bit in no_rows is set. Inserted by the chunk's record. Read through batch.operation_states; retention deletes them with their operations.";
const NO_ROWS =
  'The operations of the run that affected no row (an update or delete of a row gone), one bit each in the order of their ids, the lowest bit of each byte first (get_bit(no_rows, id - first_id)); NULL where each affected one row.';
const OUTCOMES =
  'How an operation settled, where not recorded in a run: FAILED, CANCELLED, rows affected other than one or none, or after a retry; one row each, inserted by chunks, cancels and revocations, deleted by a retry or retention. Read through batch.operation_states; its triggers keep batch.operation_counts.';

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
