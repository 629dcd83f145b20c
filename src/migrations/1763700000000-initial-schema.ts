import { MigrationInterface, QueryRunner } from 'typeorm';

export class InitialSchema1763700000000 implements MigrationInterface {
  name = 'InitialSchema1763700000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`CREATE SCHEMA IF NOT EXISTS batch`);
    await db.query(`
      CREATE TABLE batch.clients (
        id bigserial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        api_key_hash text NOT NULL UNIQUE,
        targets text[] NOT NULL DEFAULT '{}',
        admin boolean NOT NULL DEFAULT false,
        rate_limit_per_second integer CHECK (rate_limit_per_second > 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      )`);
    await db.query(`
      CREATE TABLE batch.executions (
        id bigserial PRIMARY KEY,
        status text NOT NULL CHECK (status IN ('COMPLETED', 'FAILED')),
        exit_message text,
        worker text NOT NULL,
        read_count integer NOT NULL DEFAULT 0,
        write_count integer NOT NULL DEFAULT 0,
        filter_count integer NOT NULL DEFAULT 0,
        read_skip_count integer NOT NULL DEFAULT 0,
        process_skip_count integer NOT NULL DEFAULT 0,
        write_skip_count integer NOT NULL DEFAULT 0,
        commit_count integer NOT NULL DEFAULT 0,
        rollback_count integer NOT NULL DEFAULT 0,
        started_at timestamptz NOT NULL,
        ended_at timestamptz NOT NULL
      )`);
    await db.query(`
      CREATE TABLE batch.execution_steps (
        id bigserial PRIMARY KEY,
        execution_id bigint NOT NULL REFERENCES batch.executions (id) ON DELETE CASCADE,
        name text NOT NULL,
        target text NOT NULL,
        type text NOT NULL,
        status text NOT NULL,
        exit_message text,
        read_count integer NOT NULL DEFAULT 0,
        write_count integer NOT NULL DEFAULT 0,
        filter_count integer NOT NULL DEFAULT 0,
        read_skip_count integer NOT NULL DEFAULT 0,
        process_skip_count integer NOT NULL DEFAULT 0,
        write_skip_count integer NOT NULL DEFAULT 0,
        commit_count integer NOT NULL DEFAULT 0,
        rollback_count integer NOT NULL DEFAULT 0,
        started_at timestamptz NOT NULL,
        ended_at timestamptz NOT NULL
      )`);
    await db.query(`CREATE INDEX execution_steps_execution ON batch.execution_steps (execution_id)`);
    await db.query(`
      CREATE TABLE batch.operations (
        id bigserial PRIMARY KEY,
        client_id bigint NOT NULL REFERENCES batch.clients (id),
        target text NOT NULL,
        type text NOT NULL CHECK (type IN ('insert', 'upsert', 'update', 'delete', 'increment')),
        row_values jsonb,
        row_key jsonb,
        conflict_key text[],
        idempotency_key text,
        request_key text,
        label text,
        priority smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
        not_before timestamptz,
        status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'CANCELLED')),
        attempts integer NOT NULL DEFAULT 0,
        rows_affected integer,
        error_code text,
        error_message text,
        execution_id bigint,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        settled_at timestamptz
      )`);
    // The claim: pending rows in order of application; small because settled rows leave it.
    await db.query(
      `CREATE INDEX operations_pending ON batch.operations (priority DESC, id) INCLUDE (target, not_before) WHERE status = 'PENDING'`,
    );
    await db.query(
      `CREATE UNIQUE INDEX operations_idempotency_key ON batch.operations (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL`,
    );
    await db.query(
      `CREATE UNIQUE INDEX operations_request_key ON batch.operations (client_id, request_key) WHERE request_key IS NOT NULL`,
    );
    await db.query(`CREATE INDEX operations_client ON batch.operations (client_id, id DESC)`);
    await db.query(`CREATE INDEX operations_status ON batch.operations (status, id DESC)`);
    await db.query(`
      CREATE TABLE batch.outbox (
        id bigserial PRIMARY KEY,
        routing_key text NOT NULL,
        payload jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz
      )`);
    await db.query(`CREATE INDEX outbox_unsent ON batch.outbox (id) WHERE sent_at IS NULL`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP SCHEMA batch CASCADE`);
  }
}
