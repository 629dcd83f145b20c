import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Counts by client, target and status kept by the database itself, so that /api/stats, the dashboard and every
 * metrics scrape read a few hundred rows rather than counting the whole operations table (about half a second
 * with 5 million retained rows, on every scrape). Each statement that changes operations adds rows of counts
 * (`added` entered the status, `removed` left it, in `minute`); nothing is ever updated in place, so concurrent
 * ingests and chunks never wait for each other here. Workers fold the rows from time to time (RetentionService),
 * keeping the last 15 minutes per minute: the settled ones added per minute are the throughput.
 *
 * An UPDATE counts the net change per client, target and status: a row whose status did not change counts nothing.
 */
export class OperationCounts1764200000000 implements MigrationInterface {
  name = 'OperationCounts1764200000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.operation_counts (
        client_id bigint NOT NULL,
        target text NOT NULL,
        status text NOT NULL,
        minute timestamptz NOT NULL,
        added bigint NOT NULL,
        removed bigint NOT NULL
      )`);
    await db.query(`
      CREATE FUNCTION batch.count_operation_changes() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          DELETE FROM batch.operation_counts;
        ELSIF TG_OP = 'INSERT' THEN
          INSERT INTO batch.operation_counts
          SELECT client_id, target, status, date_trunc('minute', now()), count(*), 0 FROM new_rows GROUP BY 1, 2, 3;
        ELSIF TG_OP = 'DELETE' THEN
          INSERT INTO batch.operation_counts
          SELECT client_id, target, status, date_trunc('minute', now()), 0, count(*) FROM old_rows GROUP BY 1, 2, 3;
        ELSE
          INSERT INTO batch.operation_counts
          SELECT client_id, target, status, date_trunc('minute', now()), greatest(sum(n), 0), greatest(-sum(n), 0)
            FROM (SELECT client_id, target, status, 1 AS n FROM new_rows
                  UNION ALL SELECT client_id, target, status, -1 FROM old_rows) change
           GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
        END IF;
        RETURN NULL;
      END $$`);
    await db.query(`CREATE TRIGGER count_inserts AFTER INSERT ON batch.operations REFERENCING NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION batch.count_operation_changes()`);
    await db.query(`CREATE TRIGGER count_updates AFTER UPDATE ON batch.operations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION batch.count_operation_changes()`);
    await db.query(`CREATE TRIGGER count_deletes AFTER DELETE ON batch.operations REFERENCING OLD TABLE AS old_rows
                    FOR EACH STATEMENT EXECUTE FUNCTION batch.count_operation_changes()`);
    await db.query(
      `CREATE TRIGGER count_truncates AFTER TRUNCATE ON batch.operations FOR EACH STATEMENT EXECUTE FUNCTION batch.count_operation_changes()`,
    );
    // The operations already stored (the triggers hold off writers until this migration commits); those settled in
    // the last 15 minutes by the minute they settled in, so the throughput shown carries over.
    await db.query(`
      INSERT INTO batch.operation_counts
      SELECT client_id, target, status, minute, count(*), 0
        FROM (SELECT client_id, target, status,
                     CASE WHEN status IN ('COMPLETED', 'FAILED') AND settled_at >= date_trunc('minute', now()) - interval '14 minutes'
                          THEN date_trunc('minute', settled_at) ELSE '-infinity' END AS minute
                FROM batch.operations) o
       GROUP BY 1, 2, 3, 4`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TRIGGER count_truncates ON batch.operations`);
    await db.query(`DROP TRIGGER count_deletes ON batch.operations`);
    await db.query(`DROP TRIGGER count_updates ON batch.operations`);
    await db.query(`DROP TRIGGER count_inserts ON batch.operations`);
    await db.query(`DROP FUNCTION batch.count_operation_changes()`);
    await db.query(`DROP TABLE batch.operation_counts`);
  }
}
