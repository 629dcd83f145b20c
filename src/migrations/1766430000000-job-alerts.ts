import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Job alerts (docs/operating.md#job-alerts): webhooks an admin points a job, a client's jobs, or both at, called when
 * an execution ends FAILED, or COMPLETED_WITH_SKIPS when asked. batch.job_finished writes a delivery for each alert an
 * execution matches, in the transaction that ends it (an outbox of their own: a webhook's answer never holds back the
 * notifications' relay), and the worker processes' delivery loop calls the webhooks, retried with back-off up to a
 * number of attempts. Deliveries go with their alert and with their execution (retention).
 */
export class JobAlerts1766430000000 implements MigrationInterface {
  name = 'JobAlerts1766430000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE batch.job_alerts (
        name text PRIMARY KEY,
        url text NOT NULL,
        job text,
        client_id bigint REFERENCES batch.clients (id),
        on_exit text[] NOT NULL
          CHECK (cardinality(on_exit) > 0 AND on_exit <@ ARRAY['FAILED', 'COMPLETED_WITH_SKIPS']),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      COMMENT ON TABLE batch.job_alerts IS ${literal(ALERTS)};

      CREATE TABLE batch.alert_deliveries (
        id bigserial PRIMARY KEY,
        alert text NOT NULL REFERENCES batch.job_alerts (name) ON DELETE CASCADE,
        execution_id bigint NOT NULL REFERENCES batch.job_executions (id) ON DELETE CASCADE,
        event jsonb NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        due_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz,
        failed_at timestamptz,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX alert_deliveries_due ON batch.alert_deliveries (due_at)
        WHERE delivered_at IS NULL AND failed_at IS NULL;
      CREATE INDEX alert_deliveries_alert ON batch.alert_deliveries (alert, id);
      CREATE INDEX alert_deliveries_execution ON batch.alert_deliveries (execution_id);
      COMMENT ON TABLE batch.alert_deliveries IS ${literal(DELIVERIES)}`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP TABLE batch.alert_deliveries, batch.job_alerts`);
  }
}

const ALERTS =
  "Webhooks called when a job execution ends FAILED (or COMPLETED_WITH_SKIPS, as on_exit asks): for one job, one client's jobs (client_id), both, or every execution. Written by the admin API only (/api/jobs/alerts), never from what a client sends; read by batch.job_finished.";
const DELIVERIES =
  "Each call an alert owes: the job.finished notification of the execution that matched it, written by batch.job_finished in the transaction that ends the execution; the worker processes' delivery loop takes the due ones (SKIP LOCKED, leased until a call's timeout has passed), calls the alert's URL, and records the answer: delivered, due again after a back-off, or failed after the last attempt. Deleted with its alert or its execution.";

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
