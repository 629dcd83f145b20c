import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Jobs (docs/jobs.md), after Spring Batch's job repository:
 * - a job instance is a job and its identifying parameters, for one client (a client never meets another's
 *   instances): unique on the hash of the parameters;
 * - its executions, at most one not ended (job_executions_running) and at most one that ends it for good
 *   (job_executions_done): concurrent launches race in these indexes, never in memory; a running one is held by a
 *   worker's lease;
 * - each execution's step executions, with their counters and the reader's position (execution_context), and the
 *   partitions of a partitioned step, held by leases of their own;
 * - the records a step skipped (rejects), schedules, and the tables a client's copies may read (clients.sources).
 * The launcher is the definitions' batch.launch_job.
 */
export class Jobs1766100000000 implements MigrationInterface {
  name = 'Jobs1766100000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE batch.clients ADD COLUMN sources text[] NOT NULL DEFAULT '{}';

      CREATE TABLE batch.job_instances (
        id bigserial PRIMARY KEY,
        job text NOT NULL,
        client_id bigint NOT NULL REFERENCES batch.clients (id),
        identity text NOT NULL,
        parameters jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT job_instances_identity UNIQUE (client_id, job, identity)
      );

      CREATE TABLE batch.job_executions (
        id bigserial PRIMARY KEY,
        instance_id bigint NOT NULL REFERENCES batch.job_instances (id),
        job text NOT NULL,
        client_id bigint NOT NULL REFERENCES batch.clients (id),
        parameters jsonb NOT NULL,
        options jsonb NOT NULL,
        status text NOT NULL
          CHECK (status IN ('STARTING', 'STARTED', 'STOPPING', 'STOPPED', 'COMPLETED', 'FAILED', 'ABANDONED')),
        exit_code text,
        exit_description text,
        start_count integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        ended_at timestamptz,
        lease_owner text,
        lease_until timestamptz
      );
      CREATE UNIQUE INDEX job_executions_running ON batch.job_executions (instance_id)
        WHERE status IN ('STARTING', 'STARTED', 'STOPPING');
      CREATE UNIQUE INDEX job_executions_done ON batch.job_executions (instance_id)
        WHERE status IN ('COMPLETED', 'ABANDONED');
      CREATE INDEX job_executions_instance ON batch.job_executions (instance_id, id);
      CREATE INDEX job_executions_client ON batch.job_executions (client_id, id);
      CREATE INDEX job_executions_job ON batch.job_executions (job, id);

      CREATE TABLE batch.step_executions (
        id bigserial PRIMARY KEY,
        job_execution_id bigint NOT NULL REFERENCES batch.job_executions (id) ON DELETE CASCADE,
        name text NOT NULL,
        partition text,
        status text NOT NULL
          CHECK (status IN ('STARTING', 'STARTED', 'STOPPING', 'STOPPED', 'COMPLETED', 'FAILED', 'ABANDONED')),
        exit_code text,
        exit_description text,
        read_count bigint NOT NULL DEFAULT 0,
        write_count bigint NOT NULL DEFAULT 0,
        filter_count bigint NOT NULL DEFAULT 0,
        read_skip_count bigint NOT NULL DEFAULT 0,
        process_skip_count bigint NOT NULL DEFAULT 0,
        write_skip_count bigint NOT NULL DEFAULT 0,
        commit_count bigint NOT NULL DEFAULT 0,
        rollback_count bigint NOT NULL DEFAULT 0,
        execution_context jsonb NOT NULL DEFAULT '{}',
        started_at timestamptz,
        ended_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        lease_owner text,
        lease_until timestamptz,
        CONSTRAINT step_executions_name UNIQUE NULLS NOT DISTINCT (job_execution_id, name, partition)
      );
      CREATE INDEX step_executions_open_partitions ON batch.step_executions (id)
        WHERE partition IS NOT NULL AND status IN ('STARTING', 'STARTED');

      CREATE TABLE batch.job_rejects (
        id bigserial PRIMARY KEY,
        job_execution_id bigint NOT NULL REFERENCES batch.job_executions (id) ON DELETE CASCADE,
        step text NOT NULL,
        line bigint,
        byte_offset bigint,
        column_name text,
        code text NOT NULL,
        message text NOT NULL,
        record text
      );
      CREATE INDEX job_rejects_execution ON batch.job_rejects (job_execution_id, id);

      CREATE TABLE batch.job_schedules (
        name text PRIMARY KEY,
        job text NOT NULL,
        cron text NOT NULL,
        time_zone text NOT NULL,
        parameters jsonb NOT NULL,
        options jsonb NOT NULL,
        client_id bigint NOT NULL REFERENCES batch.clients (id),
        backfill_seconds integer NOT NULL DEFAULT 0 CHECK (backfill_seconds >= 0),
        next_tick_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX job_schedules_next_tick ON batch.job_schedules (next_tick_at)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`
      DROP FUNCTION IF EXISTS batch.launch_job;
      DROP TABLE batch.job_schedules, batch.job_rejects, batch.step_executions, batch.job_executions,
                 batch.job_instances;
      ALTER TABLE batch.clients DROP COLUMN sources`);
  }
}
