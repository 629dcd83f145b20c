import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { TargetLedgers } from './target-ledger';
import { Database } from './database';
import { MAX_ID } from './streams';
import { messageText, SETTLED_MESSAGE_COLUMNS, SettledMessageColumns } from '../outbox/settled-events';

/** The first minute of the throughput (/api/stats): the last 15 minutes, the current one included, kept per minute. */
export const THROUGHPUT_SINCE = `date_trunc('minute', now()) - interval '14 minutes'`;

const BATCH_SIZE = 1000;
/** Uploaded data sets deleted per statement: each goes with its blocks, up to BATCH_IMPORT_MAX_BYTES of them. */
const FILES_PER_BATCH = 10;
/** Unsent messages written out as their text per statement: each up to about a megabyte. */
const MESSAGES_PER_BATCH = 20;
/** Runs hold up to a chunk's operations each: a few per statement. */
const RUNS_PER_BATCH = 10;

/**
 * Deletes what is older than BATCH_RETENTION_HOURS, in small batches so that no long lock or transaction
 * builds up: settled operations, requests, sent outbox rows, chunks (with their steps), uploaded data sets. Ids grow with time, so
 * each batch walks the primary key from the oldest row, up to the first operation (request) created since the cutoff.
 * Idempotency keys and requests are remembered for as long as operations of their time are kept. The stages of inserts
 * (batch.empty_typed_stages) are emptied of the operations taken. Then the operation counts are folded,
 * and where the server runs without autovacuum, the queue tables are vacuumed here too.
 */
@Injectable()
export class RetentionService {
  private readonly logger = new Logger(RetentionService.name);

  constructor(
    private readonly config: AppConfig,
    private readonly db: Database,
    private readonly ledgers: TargetLedgers,
  ) {}

  /** One run: purge, fold the counts, vacuum where autovacuum is off. */
  async run(): Promise<void> {
    await this.purge();
    await this.db.query('SELECT batch.empty_typed_stages()');
    await this.foldCounts();
    await this.vacuumWithoutAutovacuum();
  }

  /** Deletes everything past retention; returns how many rows of each kind. */
  async purge(): Promise<{
    operations: number;
    requests: number;
    outbox: number;
    executions: number;
    importFiles: number;
    ledgers: number;
  }> {
    const cutoff = new Date(Date.now() - this.config.retention.hours * 3_600_000);
    const result = {
      ...(await this.purgeOperations(cutoff)),
      outbox: await this.inBatches(
        `DELETE FROM batch.outbox WHERE id IN (SELECT id FROM batch.outbox WHERE sent_at < $1 ORDER BY id LIMIT ${BATCH_SIZE})`,
        [cutoff],
      ),
      executions: await this.inBatches(
        `DELETE FROM batch.chunks WHERE id IN (SELECT id FROM batch.chunks WHERE ended_at < $1 LIMIT ${BATCH_SIZE})`,
        [cutoff],
      ),
      // an uploaded data set, once no execution of an import of it runs (one that failed cannot be restarted after);
      // a few at a time, each with its blocks (up to 4 GiB)
      importFiles: await this.inBatches(
        `DELETE FROM batch.import_files WHERE id IN (
           SELECT f.id FROM batch.import_files f
            WHERE f.created_at < $1 AND NOT EXISTS (
              SELECT 1 FROM batch.job_instances i JOIN batch.job_executions e ON e.instance_id = i.id
               WHERE i.client_id = f.client_id AND i.job = 'import' AND i.parameters->>'sha256' = f.sha256
                 AND e.status IN ('STARTING', 'STARTED', 'STOPPING'))
            LIMIT ${FILES_PER_BATCH})`,
        [cutoff],
        FILES_PER_BATCH,
      ),
      ledgers: await this.ledgers.deleteBefore(cutoff),
    };
    if (Object.values(result).some((deleted) => deleted > 0))
      this.logger.log(`retention deleted ${JSON.stringify(result)}`);
    return result;
  }

  /** Operations settled before `cutoff`, with their outcomes and runs, and the requests no operation kept recalls. */
  private async purgeOperations(cutoff: Date): Promise<{ operations: number; requests: number }> {
    // An operation settled before the cutoff was created before it, so none lies past the first one created since:
    // the batches walk only the old rows, not (when there is nothing to delete) the whole table, seconds with millions.
    const [{ horizon, requestHorizon }] = await this.db.query<{
      horizon: string | null;
      requestHorizon: string | null;
    }>(
      `SELECT (SELECT id FROM batch.operations WHERE created_at >= $1 ORDER BY id LIMIT 1) AS horizon,
              (SELECT id FROM batch.requests WHERE created_at >= $1 ORDER BY id LIMIT 1) AS "requestHorizon"`,
      [cutoff],
    );
    await this.writeUnsentMessages(cutoff);
    const operations =
      (await this.inBatches(
        `WITH old AS (
           DELETE FROM batch.outcomes WHERE operation_id IN (
             SELECT operation_id FROM batch.outcomes WHERE operation_id < $2 AND settled_at < $1 ORDER BY operation_id LIMIT ${BATCH_SIZE})
           RETURNING operation_id)
         DELETE FROM batch.operations WHERE id IN (SELECT operation_id FROM old)`,
        [cutoff, horizon ?? MAX_ID],
      )) + (await this.purgeRuns(cutoff, horizon ?? MAX_ID));
    // a request is remembered (a redelivery stores nothing) as long as operations created with it
    const requests = await this.inBatches(
      `DELETE FROM batch.requests WHERE id IN (SELECT id FROM batch.requests WHERE id < $1 ORDER BY id LIMIT ${BATCH_SIZE})`,
      [requestHorizon ?? MAX_ID],
    );
    return { operations, requests };
  }

  /**
   * Messages not sent yet (the broker down for as long) written out as their text, a few at a time, before the
   * operations they report go.
   */
  private async writeUnsentMessages(cutoff: Date): Promise<void> {
    for (;;) {
      const messages = await this.db.query<{ id: string } & SettledMessageColumns>(
        `SELECT o.id, ${SETTLED_MESSAGE_COLUMNS('o')} FROM batch.outbox o
          WHERE sent_at IS NULL AND payload IS NULL AND created_at < $1 ORDER BY id LIMIT ${MESSAGES_PER_BATCH}`,
        [cutoff],
      );
      if (messages.length === 0) return;
      await this.db.query(
        `UPDATE batch.outbox o SET payload = m.payload FROM unnest($1::bigint[], $2::text[]) AS m(id, payload) WHERE o.id = m.id`,
        [messages.map((m) => m.id), messages.map(messageText)],
      );
    }
  }

  /**
   * Folds the rows of operation counts that statements have added since the last fold into one per client, target
   * and status, keeping the last 15 minutes per minute (the throughput). One statement: readers see the counts
   * before or after it, the same either way. Rows added meanwhile by transactions it cannot see are left for next time.
   */
  async foldCounts(): Promise<void> {
    const recent = `minute >= ${THROUGHPUT_SINCE}`;
    await this.db.query(`
      WITH folded AS (DELETE FROM batch.operation_counts RETURNING *)
      INSERT INTO batch.operation_counts
      SELECT client_id, target, status, minute, sum(added), sum(removed)
        FROM (SELECT client_id, target, status, CASE WHEN ${recent} THEN minute ELSE '-infinity' END AS minute,
                     CASE WHEN ${recent} THEN added ELSE added - removed END AS added, CASE WHEN ${recent} THEN removed ELSE 0 END AS removed
                FROM folded) f
       GROUP BY 1, 2, 3, 4 HAVING sum(added) <> 0 OR sum(removed) <> 0`);
  }

  /**
   * Every settled operation leaves a dead row version behind (in the table and the claim's index) until a vacuum
   * clears it; left alone, chunks slow down as they pile up. The queue tables rely on autovacuum (their settings
   * make it run often); on a server that runs without it, workers vacuum them here instead. Returns whether it did.
   */
  async vacuumWithoutAutovacuum(): Promise<boolean> {
    const [{ autovacuum }] = await this.db.query<{ autovacuum: string }>(
      `SELECT current_setting('autovacuum') AS autovacuum`,
    );
    if (autovacuum === 'on') return false;
    const stages = await this.db.query<{ stage: string }>(
      'SELECT stage FROM batch.typed_targets WHERE to_regclass(stage) IS NOT NULL',
    );
    await this.db.query(
      'VACUUM (SKIP_LOCKED, ANALYZE) batch.deferred, batch.streams, batch.outcomes, batch.settled_runs, batch.operations, batch.requests, batch.outbox, batch.operation_counts' +
        stages.map(({ stage }) => `, ${stage}`).join(''),
    );
    return true;
  }

  /**
   * Runs of operations completed before the cutoff, a few at a time, with their operations; their counts go as the
   * outcomes' triggers take off those of the outcome rows.
   */
  private async purgeRuns(cutoff: Date, horizon: string): Promise<number> {
    let total = 0;
    for (;;) {
      const [{ runs, operations }] = await this.db.query<{ runs: number; operations: number }>(
        `WITH old AS (
           DELETE FROM batch.settled_runs WHERE first_id IN (
             SELECT first_id FROM batch.settled_runs WHERE first_id < $2 AND settled_at < $1 ORDER BY first_id LIMIT ${RUNS_PER_BATCH})
           RETURNING first_id, last_id),
         gone AS (DELETE FROM batch.operations o USING old WHERE o.id BETWEEN old.first_id AND old.last_id RETURNING o.client_id, o.target),
         counted AS (
           INSERT INTO batch.operation_counts (client_id, target, status, minute, added, removed)
           SELECT client_id, target, 'COMPLETED', date_trunc('minute', now()), 0, count(*) FROM gone GROUP BY 1, 2)
         SELECT (SELECT count(*) FROM old)::int AS runs, (SELECT count(*) FROM gone)::int AS operations`,
        [cutoff, horizon],
      );
      total += operations;
      if (runs < RUNS_PER_BATCH) return total;
    }
  }

  private async inBatches(sql: string, params: unknown[], size = BATCH_SIZE): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = (await this.db.pool.query(sql, params)).rowCount ?? 0;
      total += deleted;
      if (deleted < size) return total;
    }
  }
}

/** Runs retention every BATCH_RETENTION_INTERVAL, one run at a time, in worker processes. */
@Injectable()
export class RetentionSchedule implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(RetentionSchedule.name);
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly retention: RetentionService,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.running ??= this.retention
        .run()
        .catch((error: Error) => this.logger.warn(`retention failed: ${error.message}`))
        .finally(() => (this.running = null));
    }, this.config.retention.intervalMs);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
