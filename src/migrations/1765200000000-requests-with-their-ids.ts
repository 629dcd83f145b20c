import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A request knows the range of its operations' ids (first_id, last_id), drawn when it is stored, so a redelivered
 * request finds what it stored by a range of the primary key (and request_ref) instead of an index of request_ref,
 * which every stored operation paid for. Requests stored
 * before are given the range of the operations that refer to them.
 */
export class RequestsWithTheirIds1765200000000 implements MigrationInterface {
  name = 'RequestsWithTheirIds1765200000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.requests ADD COLUMN first_id bigint, ADD COLUMN last_id bigint`);
    await db.query(`
      UPDATE batch.requests r SET first_id = o.first_id, last_id = o.last_id
        FROM (SELECT request_ref, min(id) AS first_id, max(id) AS last_id FROM batch.operations
               WHERE request_ref IS NOT NULL GROUP BY request_ref) o
       WHERE r.id = o.request_ref`);
    await db.query(`DROP INDEX batch.operations_request`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`CREATE INDEX operations_request ON batch.operations (request_ref) WHERE request_ref IS NOT NULL`);
    await db.query(`ALTER TABLE batch.requests DROP COLUMN first_id, DROP COLUMN last_id`);
  }
}
