import { Injectable } from '@nestjs/common';
import type { IJobAlert, IJobAlertDelivery, JobAlertExit } from '../../interfaces/job.interfaces';
import { BatchError, invalidField } from '../batch-error';
import { JobRegistry } from './job-registry.service';
import { Database } from '../storage/database';

/** A job alert as an admin puts it: the webhook, and which executions' ends it is called for. */
export interface JobAlertRequest {
  url: string;
  job?: string | null;
  client?: string | null;
  on?: JobAlertExit[];
}

interface AlertRow {
  name: string;
  url: string;
  job: string | null;
  client: string | null;
  on_exit: JobAlertExit[];
  created_at: Date;
  updated_at: Date;
  execution_id: string | null;
  attempts: number | null;
  last_error: string | null;
  delivery_created_at: Date | null;
  delivered_at: Date | null;
  failed_at: Date | null;
  due_at: Date | null;
}

/**
 * Job alerts (docs/operating.md#job-alerts), as the admin API puts, lists and deletes them. Their URLs come from an
 * admin only: the routes are admin-only, and nothing a client sends (parameters, options) names one.
 * batch.job_finished writes the deliveries an ending execution owes them; AlertDeliveryLoop calls the webhooks.
 */
@Injectable()
export class JobAlerts {
  constructor(
    private readonly db: Database,
    private readonly registry: JobRegistry,
  ) {}

  /** Creates or replaces an alert; executions that end after this answers are matched against it. */
  async put(name: string, request: JobAlertRequest): Promise<IJobAlert> {
    checkWebhookUrl(request.url);
    const job = request.job ?? null;
    if (job !== null && !this.registry.get(job))
      throw new BatchError('NOT_FOUND', `No job named ${job}: GET /api/jobs lists them`);
    let clientId: string | null = null;
    if (request.client) {
      const [client] = await this.db.query<{ id: string }>(
        `SELECT id FROM batch.clients WHERE name = $1 AND revoked_at IS NULL`,
        [request.client],
      );
      if (!client) throw invalidField('client', `no active client is named ${request.client}`);
      clientId = client.id;
    }
    await this.db.query(
      `INSERT INTO batch.job_alerts (name, url, job, client_id, on_exit) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, job = EXCLUDED.job, client_id = EXCLUDED.client_id,
         on_exit = EXCLUDED.on_exit, updated_at = now()`,
      [name, request.url, job, clientId, [...new Set(request.on ?? ['FAILED'])]],
    );
    return (await this.list(name))[0];
  }

  /** The alerts (or the one named), each with its newest delivery. */
  async list(name?: string): Promise<IJobAlert[]> {
    const rows = await this.db.query<AlertRow>(
      `SELECT a.name, a.url, a.job, c.name AS client, a.on_exit, a.created_at, a.updated_at, d.execution_id,
              d.attempts, d.last_error, d.created_at AS delivery_created_at, d.delivered_at, d.failed_at, d.due_at
         FROM batch.job_alerts a
         LEFT JOIN batch.clients c ON c.id = a.client_id
         LEFT JOIN LATERAL (SELECT * FROM batch.alert_deliveries d WHERE d.alert = a.name ORDER BY d.id DESC LIMIT 1) d
           ON true
        WHERE $1::text IS NULL OR a.name = $1 ORDER BY a.name`,
      [name ?? null],
    );
    return rows.map((row) => ({
      name: row.name,
      url: row.url,
      job: row.job,
      client: row.client,
      on: row.on_exit,
      createdAt: row.created_at.toISOString(),
      updatedAt: row.updated_at.toISOString(),
      lastDelivery: deliveryOf(row),
    }));
  }

  /** Deletes an alert and the deliveries it is still owed: none is called after this answers. */
  async delete(name: string): Promise<void> {
    const rows = await this.db.query(`DELETE FROM batch.job_alerts WHERE name = $1 RETURNING 1`, [name]);
    if (rows.length === 0)
      throw new BatchError('NOT_FOUND', `No job alert named ${name}: GET /api/jobs/alerts lists them`);
  }
}

function deliveryOf(row: AlertRow): IJobAlertDelivery | null {
  if (row.execution_id === null) return null;
  const status = row.delivered_at ? 'DELIVERED' : row.failed_at ? 'FAILED' : 'PENDING';
  return {
    executionId: row.execution_id,
    status,
    attempts: row.attempts ?? 0,
    lastError: row.last_error,
    createdAt: row.delivery_created_at!.toISOString(),
    deliveredAt: row.delivered_at?.toISOString() ?? null,
    nextAttemptAt: status === 'PENDING' ? row.due_at!.toISOString() : null,
  };
}

/**
 * A webhook's URL: http or https, without a user or password (fetch refuses those; a token belongs in the path or the
 * query, as Slack's incoming webhooks have it).
 */
export function checkWebhookUrl(text: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidField('url', 'is not an absolute URL (such as https://hooks.slack.com/services/…)');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalidField('url', 'must be http or https');
  if (url.username || url.password)
    throw invalidField('url', 'must carry no user or password: put a token in its path or query');
}
