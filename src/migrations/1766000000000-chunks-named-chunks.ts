import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The queue's records of its chunk transactions are chunks (batch.chunks, chunk_steps, chunk_clients, chunk_id), so
 * that "execution" names one thing: a job's execution. The contract's names stay (GET /api/executions, an
 * operation's and a notification's `executionId` are a chunk's id). The view and the functions that read them are
 * the definitions', applied after this.
 */
export class ChunksNamedChunks1766000000000 implements MigrationInterface {
  name = 'ChunksNamedChunks1766000000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`DROP VIEW batch.operation_states`);
    await db.query(`
      ALTER TABLE batch.executions RENAME TO chunks;
      ALTER SEQUENCE batch.executions_id_seq RENAME TO chunks_id_seq;
      ALTER INDEX batch.executions_pkey RENAME TO chunks_pkey;
      ALTER INDEX batch.executions_ended RENAME TO chunks_ended;
      ALTER TABLE batch.chunks RENAME CONSTRAINT executions_status_check TO chunks_status_check;
      ALTER TABLE batch.execution_steps RENAME TO chunk_steps;
      ALTER SEQUENCE batch.execution_steps_id_seq RENAME TO chunk_steps_id_seq;
      ALTER TABLE batch.chunk_steps RENAME COLUMN execution_id TO chunk_id;
      ALTER INDEX batch.execution_steps_pkey RENAME TO chunk_steps_pkey;
      ALTER INDEX batch.execution_steps_execution RENAME TO chunk_steps_chunk;
      ALTER TABLE batch.chunk_steps RENAME CONSTRAINT execution_steps_execution_id_fkey TO chunk_steps_chunk_id_fkey;
      ALTER TABLE batch.execution_clients RENAME TO chunk_clients;
      ALTER TABLE batch.chunk_clients RENAME COLUMN execution_id TO chunk_id;
      ALTER INDEX batch.execution_clients_pkey RENAME TO chunk_clients_pkey;
      ALTER INDEX batch.execution_clients_execution RENAME TO chunk_clients_chunk;
      ALTER TABLE batch.chunk_clients RENAME CONSTRAINT execution_clients_execution_id_fkey TO chunk_clients_chunk_id_fkey;
      ALTER TABLE batch.outcomes RENAME COLUMN execution_id TO chunk_id;
      ALTER TABLE batch.settled_runs RENAME COLUMN execution_id TO chunk_id;
      ALTER TABLE batch.outbox RENAME COLUMN execution_id TO chunk_id`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP VIEW IF EXISTS batch.operation_states`);
    await db.query(`
      ALTER TABLE batch.outbox RENAME COLUMN chunk_id TO execution_id;
      ALTER TABLE batch.settled_runs RENAME COLUMN chunk_id TO execution_id;
      ALTER TABLE batch.outcomes RENAME COLUMN chunk_id TO execution_id;
      ALTER TABLE batch.chunk_clients RENAME CONSTRAINT chunk_clients_chunk_id_fkey TO execution_clients_execution_id_fkey;
      ALTER INDEX batch.chunk_clients_chunk RENAME TO execution_clients_execution;
      ALTER INDEX batch.chunk_clients_pkey RENAME TO execution_clients_pkey;
      ALTER TABLE batch.chunk_clients RENAME COLUMN chunk_id TO execution_id;
      ALTER TABLE batch.chunk_clients RENAME TO execution_clients;
      ALTER TABLE batch.chunk_steps RENAME CONSTRAINT chunk_steps_chunk_id_fkey TO execution_steps_execution_id_fkey;
      ALTER INDEX batch.chunk_steps_chunk RENAME TO execution_steps_execution;
      ALTER INDEX batch.chunk_steps_pkey RENAME TO execution_steps_pkey;
      ALTER TABLE batch.chunk_steps RENAME COLUMN chunk_id TO execution_id;
      ALTER SEQUENCE batch.chunk_steps_id_seq RENAME TO execution_steps_id_seq;
      ALTER TABLE batch.chunk_steps RENAME TO execution_steps;
      ALTER TABLE batch.chunks RENAME CONSTRAINT chunks_status_check TO executions_status_check;
      ALTER INDEX batch.chunks_ended RENAME TO executions_ended;
      ALTER INDEX batch.chunks_pkey RENAME TO executions_pkey;
      ALTER SEQUENCE batch.chunks_id_seq RENAME TO executions_id_seq;
      ALTER TABLE batch.chunks RENAME TO executions`);
  }
}
