import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What one client reads of the queue (its listings, its stats) goes through indexes by client, so that it never
 * grows with other clients' backlogs: operations by (client_id, id) ascending, which row comparisons on both
 * columns can range over (the descending index it replaces could not), the deferred set and the outcome rows by
 * client, and the counts by client.
 */
export class ClientsReadThroughTheirIndexes1765700000000 implements MigrationInterface {
  name = 'ClientsReadThroughTheirIndexes1765700000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`CREATE INDEX operations_by_client ON batch.operations (client_id, id)`);
    await db.query(`DROP INDEX batch.operations_client`);
    await db.query(`CREATE INDEX deferred_by_client ON batch.deferred (client_id, id)`);
    await db.query(`CREATE INDEX outcomes_by_client ON batch.outcomes (client_id, operation_id)`);
    await db.query(`CREATE INDEX operation_counts_by_client ON batch.operation_counts (client_id)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP INDEX batch.operation_counts_by_client`);
    await db.query(`DROP INDEX batch.outcomes_by_client`);
    await db.query(`DROP INDEX batch.deferred_by_client`);
    await db.query(`CREATE INDEX operations_client ON batch.operations (client_id, id DESC)`);
    await db.query(`DROP INDEX batch.operations_by_client`);
  }
}
