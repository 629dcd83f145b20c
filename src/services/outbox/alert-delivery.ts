import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import type { IJobFinishedEvent } from '../../interfaces/job.interfaces';
import { Database } from '../storage/database';
import { backOffMs, Wakeup, WorkerLoop } from '../worker-loop';
import { alertBody } from './alert-message';

/** Deliveries taken in one turn at most, called at once. */
const DELIVERIES_PER_TURN = 10;
/** How long a worker waits before it looks for due deliveries again, when it found none: alerts are not urgent. */
const DELIVERY_POLL_MS = 1000;
/** The longest wait between two calls of one delivery. */
const MAX_RETRY_MS = 3_600_000;

interface DueDelivery {
  id: string;
  alert: string;
  attempts: number;
  event: IJobFinishedEvent;
  url: string;
}

/**
 * The due deliveries, oldest first, each leased (due again once `$2` ms have passed, so that a worker that died in a
 * call leaves it to another: at least once) with its attempt counted; SKIP LOCKED, so that workers share them.
 */
const TAKE_DUE_SQL = `
  UPDATE batch.alert_deliveries d
     SET attempts = d.attempts + 1, due_at = now() + $2::integer * interval '1 millisecond'
    FROM (SELECT id FROM batch.alert_deliveries
           WHERE delivered_at IS NULL AND failed_at IS NULL AND due_at <= now()
           ORDER BY due_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) due,
         batch.job_alerts a
   WHERE d.id = due.id AND a.name = d.alert
  RETURNING d.id, d.alert, d.attempts, d.event, a.url`;

/**
 * Calls the job alerts' webhooks (docs/operating.md#job-alerts) in worker processes: takes the due deliveries that
 * batch.job_finished wrote as executions ended, POSTs each (BATCH_ALERT_TIMEOUT_MS at most, no redirect followed, the
 * answer's body never read), and records the outcome: delivered on a 2xx answer; otherwise due again after an
 * exponential back-off from BATCH_ALERT_RETRY_MS, until BATCH_ALERT_MAX_ATTEMPTS calls failed. It runs beside the
 * job workers and shares nothing with them, so a webhook that is slow or down never holds back a job.
 */
@Injectable()
export class AlertDeliveryLoop extends WorkerLoop {
  protected readonly logger = new Logger('JobAlerts');

  constructor(
    private readonly config: AppConfig,
    private readonly db: Database,
  ) {
    super(new Wakeup(), DELIVERY_POLL_MS);
  }

  protected async turn(): Promise<boolean> {
    const lease = this.config.alerts.timeoutMs * 2 + DELIVERY_POLL_MS;
    const due = await this.db.query<DueDelivery>(TAKE_DUE_SQL, [DELIVERIES_PER_TURN, lease]);
    const outcomes = await Promise.allSettled(due.map((delivery) => this.deliver(delivery)));
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason; // the outcome not recorded: the delivery is called again once its lease ran out
    return due.length === DELIVERIES_PER_TURN;
  }

  private async deliver(delivery: DueDelivery): Promise<void> {
    const { timeoutMs, maxAttempts, retryMs } = this.config.alerts;
    const error = await callWebhook(delivery.url, alertBody(delivery.alert, delivery.event), delivery.id, timeoutMs);
    if (error === null) {
      await this.db.query(`UPDATE batch.alert_deliveries SET delivered_at = now() WHERE id = $1`, [delivery.id]);
      return;
    }
    const where = `alert ${delivery.alert}, execution ${delivery.event.executionId}, ${hostOf(delivery.url)}`;
    if (delivery.attempts >= maxAttempts) {
      await this.db.query(`UPDATE batch.alert_deliveries SET failed_at = now(), last_error = $2 WHERE id = $1`, [
        delivery.id,
        error,
      ]);
      this.logger.warn(`${where}: given up after ${delivery.attempts} calls (BATCH_ALERT_MAX_ATTEMPTS): ${error}`);
      return;
    }
    const wait = backOffMs(retryMs, delivery.attempts - 1, MAX_RETRY_MS);
    await this.db.query(
      `UPDATE batch.alert_deliveries SET due_at = now() + $2::integer * interval '1 millisecond', last_error = $3 WHERE id = $1`,
      [delivery.id, wait, error],
    );
    this.logger.debug(`${where}: call ${delivery.attempts} failed (${error}), again in ${wait} ms`);
  }
}

/**
 * POSTs an alert's body to its webhook: null when it answered 2xx, else what went wrong, in words that name neither
 * the URL's path nor its query (where webhooks keep their token).
 */
export async function callWebhook(
  url: string,
  body: string,
  deliveryId: string,
  timeoutMs: number,
): Promise<string | null> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'batch-service', 'x-batch-delivery': deliveryId },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel().catch(() => undefined);
    return response.ok ? null : `answered ${response.status}`;
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') return `no answer within ${timeoutMs} ms (BATCH_ALERT_TIMEOUT_MS)`;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return `not reached: ${cause?.code ?? cause?.message ?? (error as Error).message}`;
  }
}

/** The webhook's host, which the log names instead of its URL. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'an invalid URL';
  }
}
