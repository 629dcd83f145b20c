import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Which clients' operations each execution settled, written with its outcomes: a client's executions are found
 * here through the primary key. Found through `batch.operations`, which has no index on execution_id (another one
 * for every settled operation to maintain), listing them took 38 s with 5 million retained operations.
 */
export class ExecutionClients1764300000000 implements MigrationInterface {
  name = 'ExecutionClients1764300000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.execution_clients (
        client_id bigint NOT NULL,
        execution_id bigint NOT NULL REFERENCES batch.executions (id) ON DELETE CASCADE,
        PRIMARY KEY (client_id, execution_id)
      )`);
    await db.query(`CREATE INDEX execution_clients_execution ON batch.execution_clients (execution_id)`);
    await db.query(`
      INSERT INTO batch.execution_clients (client_id, execution_id)
      SELECT DISTINCT o.client_id, o.execution_id FROM batch.operations o JOIN batch.executions e ON e.id = o.execution_id`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE batch.execution_clients`);
  }
}
