import { Injectable, Logger } from '@nestjs/common';
import { Cron } from 'croner';
import type { PoolClient } from 'pg';
import { AppConfig } from '../../config/app-config';
import type { IJobSchedule, JobParameters } from '../../interfaces/job.interfaces';
import { BatchError, invalidField } from '../batch-error';
import { stringifyJson } from '../exact-json';
import { Database } from '../storage/database';
import { logReason } from '../storage/database-error';
import { WorkerLoop, Wakeup } from '../worker-loop';
import { SCHEDULED_AT } from './job-parameters';
import { JobOperator, Launcher } from './job-operator.service';
import { JobRegistry } from './job-registry.service';
import { JobSignals } from './job-signals';

export interface ScheduleRequest {
  job: string;
  cron: string;
  timeZone?: string;
  parameters?: unknown;
  options?: unknown;
  client: string;
  backfillSeconds?: number;
  enabled?: boolean;
}

/**
 * How late a tick may be launched without a backfill window: a worker that was busy or paused for a moment still
 * launches it; one that was down longer launches only the ticks within `backfillSeconds`.
 */
const LATE_TICK_MS = 10_000;
/** Ticks launched for one schedule in one turn at most (a long backfill of a frequent schedule goes on in the next). */
const MAX_TICKS_PER_TURN = 100;

interface ScheduleRow {
  name: string;
  job: string;
  cron: string;
  time_zone: string;
  parameters: JobParameters;
  options: JobParameters;
  client: string;
  backfill_seconds: number;
  next_tick_at: Date;
  last_tick_at: Date | null;
  enabled: boolean;
}

/**
 * Schedules (docs/jobs.md#schedules): each launches its job as its client at each tick of its cron expression, with the
 * identifying parameter `scheduledAt`. A schedule's row holds its next tick; the worker that launches due ticks locks
 * the row (SKIP LOCKED) and moves the next tick on in the transaction of the launches, so that across any number of
 * processes each tick is launched once; and as `scheduledAt` identifies the instance, the launcher would refuse a
 * second launch of a tick anyway.
 */
@Injectable()
export class JobSchedules {
  private readonly logger = new Logger('JobSchedules');

  constructor(
    private readonly config: AppConfig,
    private readonly db: Database,
    private readonly registry: JobRegistry,
    private readonly operator: JobOperator,
    private readonly signals: JobSignals,
  ) {}

  /** Creates or replaces a schedule; its ticks are launched from the first one after this answers. */
  async put(name: string, request: ScheduleRequest): Promise<IJobSchedule> {
    const definition = this.registry.named(request.job);
    const timeZone = request.timeZone ?? 'UTC';
    const cron = cronOf(request.cron, timeZone);
    const [client] = await this.db.query<Launcher>(
      `SELECT id, admin, targets, sources FROM batch.clients WHERE name = $1 AND revoked_at IS NULL`,
      [request.client],
    );
    if (!client) throw invalidField('client', `no active client is named ${request.client}`);
    await this.checkLimit(name, client.id, request.client);
    if (typeof request.parameters === 'object' && request.parameters !== null && SCHEDULED_AT in request.parameters)
      throw invalidField(`parameters.${SCHEDULED_AT}`, 'is given by each tick');
    const launch = await this.operator.check(client, definition, request.parameters, request.options);
    await this.db.transaction(async (tx) => {
      // its first tick after now and after the last one launched, both read once a tick being launched has committed
      const locked = await tx.query<{ last: Date | null }>(
        `SELECT last_tick_at AS last FROM batch.job_schedules WHERE name = $1 FOR UPDATE`,
        [name],
      );
      const last = locked.rows[0]?.last ?? null;
      const { now } = (await tx.query<{ now: Date }>(`SELECT statement_timestamp() AS now`)).rows[0];
      const from = last && last > now ? last : now;
      await tx.query(
        `INSERT INTO batch.job_schedules (name, job, cron, time_zone, parameters, options, client_id, backfill_seconds,
                                        next_tick_at, enabled)
       VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb, $7, $8, $9, $10)
       ON CONFLICT (name) DO UPDATE SET job = EXCLUDED.job, cron = EXCLUDED.cron, time_zone = EXCLUDED.time_zone,
         parameters = EXCLUDED.parameters, options = EXCLUDED.options, client_id = EXCLUDED.client_id,
         backfill_seconds = EXCLUDED.backfill_seconds, next_tick_at = EXCLUDED.next_tick_at,
         enabled = EXCLUDED.enabled, updated_at = now()`,
        [
          name,
          definition.name,
          request.cron,
          timeZone,
          stringifyJson(launch.parameters),
          stringifyJson(launch.options),
          client.id,
          request.backfillSeconds ?? 0,
          cron.nextRun(from),
          request.enabled ?? true,
        ],
      );
    });
    return (await this.list(name))[0];
  }

  /** A client's schedules stay within BATCH_JOB_MAX_SCHEDULES_PER_CLIENT: CONFLICT for one more (a replaced one is not). */
  private async checkLimit(name: string, clientId: string, client: string): Promise<void> {
    const limit = this.config.jobs.maxSchedulesPerClient;
    const [{ others }] = await this.db.query<{ others: number }>(
      `SELECT count(*)::int AS others FROM batch.job_schedules WHERE client_id = $1 AND name <> $2`,
      [clientId, name],
    );
    if (others >= limit)
      throw new BatchError(
        'CONFLICT',
        `${client} has ${others} schedules, as many as BATCH_JOB_MAX_SCHEDULES_PER_CLIENT allows: delete one first`,
        { reason: 'SCHEDULE_LIMIT_REACHED', limit },
      );
  }

  async list(name?: string): Promise<IJobSchedule[]> {
    const rows = await this.db.query<ScheduleRow>(
      `SELECT s.name, s.job, s.cron, s.time_zone, s.parameters, s.options, c.name AS client, s.backfill_seconds,
              s.next_tick_at, s.last_tick_at, s.enabled
         FROM batch.job_schedules s JOIN batch.clients c ON c.id = s.client_id
        WHERE $1::text IS NULL OR s.name = $1 ORDER BY s.name`,
      [name ?? null],
    );
    return rows.map((row) => ({
      name: row.name,
      job: row.job,
      cron: row.cron,
      timeZone: row.time_zone,
      parameters: row.parameters,
      options: row.options,
      client: row.client,
      backfillSeconds: row.backfill_seconds,
      enabled: row.enabled,
      nextTickAt: row.enabled ? row.next_tick_at.toISOString() : null,
      lastTickAt: row.last_tick_at?.toISOString() ?? null,
    }));
  }

  /** Deletes a schedule: no tick of it is launched after this answers. */
  async delete(name: string): Promise<void> {
    const rows = await this.db.query(`DELETE FROM batch.job_schedules WHERE name = $1 RETURNING 1`, [name]);
    if (rows.length === 0) throw new BatchError('NOT_FOUND', `No schedule named ${name}`);
  }

  /**
   * Launches the ticks that are due, each once; answers how many schedules' next tick moved on. Clients take turns:
   * each one's most overdue schedule first, then each one's second, so that a client with a thousand schedules due at
   * the same minute delays another's by one turn, not by its thousand launches.
   */
  async tick(): Promise<number> {
    const due = await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<ScheduleRow & { now: Date; client_id: string; revoked: boolean } & Launcher>(
        `WITH due AS (
           SELECT name, row_number() OVER (PARTITION BY client_id ORDER BY next_tick_at, name) AS turn
             FROM batch.job_schedules WHERE next_tick_at <= now() AND enabled)
         SELECT s.name, s.job, s.cron, s.time_zone, s.parameters, s.options, s.backfill_seconds, s.next_tick_at,
                c.name AS client, c.id, c.admin, c.targets, c.sources, c.revoked_at IS NOT NULL AS revoked, now() AS now
           FROM batch.job_schedules s JOIN due d ON d.name = s.name JOIN batch.clients c ON c.id = s.client_id
          WHERE s.next_tick_at <= now() AND s.enabled ORDER BY d.turn, s.next_tick_at LIMIT 20 FOR UPDATE OF s SKIP LOCKED`,
      );
      let moved = 0;
      for (const schedule of rows) if (await this.launchDue(tx, schedule, schedule.revoked ? null : schedule)) moved++;
      return moved;
    });
    if (due > 0) this.signals.wake(); // once the launches committed
    return due;
  }

  /**
   * A schedule's due ticks, each launched unless it is older than its backfill window, and its next tick moved on; none
   * launched for a client revoked (`client` null). A tick whose launch failed other than by a refusal (the database
   * said no: a lock or serialization conflict, say) stays the next one, tried again at the next turn while it is within
   * the window. Answers whether the next tick moved on.
   */
  private async launchDue(
    tx: PoolClient,
    schedule: ScheduleRow & { now: Date },
    client: Launcher | null,
  ): Promise<boolean> {
    const cron = this.storedCron(schedule);
    const oldest = schedule.now.getTime() - Math.max(schedule.backfill_seconds * 1000, LATE_TICK_MS);
    let tick: Date | null = cron ? schedule.next_tick_at : null;
    let launched: Date | null = null;
    let late = 0; // the first ticks, those older than the window
    for (let n = 0; cron && tick && tick <= schedule.now && n < MAX_TICKS_PER_TURN; n++) {
      if (tick.getTime() < oldest) late++;
      else if (await this.launchTick(tx, schedule, client, tick)) launched = tick;
      else break;
      tick = cron.nextRun(tick);
    }
    if (late > 0)
      this.logger.warn(
        `schedule ${schedule.name}: ${late} tick(s) from ${schedule.next_tick_at.toISOString()} were not launched: older than ` +
          `its backfill window (${Math.max(schedule.backfill_seconds, LATE_TICK_MS / 1000)} s)`,
      );
    const next = tick ?? new Date('9999-12-31T00:00:00Z');
    await tx.query(
      `UPDATE batch.job_schedules SET next_tick_at = $2, last_tick_at = coalesce($3, last_tick_at) WHERE name = $1`,
      [schedule.name, next, launched],
    );
    return next.getTime() !== schedule.next_tick_at.getTime();
  }

  /**
   * The schedule's cron, or null where it no longer parses (a parser upgraded since it was put): that schedule is
   * logged and launches nothing more until it is put again, and the others go on.
   */
  private storedCron(schedule: ScheduleRow): Cron | null {
    try {
      return new Cron(schedule.cron, { timezone: schedule.time_zone, paused: true });
    } catch (error) {
      this.logger.error(
        `schedule ${schedule.name}: its cron ${schedule.cron} no longer parses (${logReason(error)}): put it again`,
      );
      return null;
    }
  }

  /** Launches a tick; answers false where its launch failed other than by a refusal (a BatchError): to be tried again. */
  private async launchTick(
    tx: PoolClient,
    schedule: ScheduleRow,
    client: Launcher | null,
    tick: Date,
  ): Promise<boolean> {
    const definition = this.registry.get(schedule.job);
    const parameters = { ...schedule.parameters, [SCHEDULED_AT]: tick.toISOString() };
    await tx.query('SAVEPOINT tick');
    try {
      if (!client) throw new BatchError('FORBIDDEN', `the client ${schedule.client} was revoked`);
      if (!definition) throw new BatchError('NOT_FOUND', `no job named ${schedule.job}`);
      const launch = await this.operator.check(client, definition, parameters, schedule.options);
      const identity = await this.operator.identityOf(definition, launch.parameters);
      await this.operator.decide(tx, client, definition, { ...launch, identity });
      await tx.query('RELEASE SAVEPOINT tick');
      return true;
    } catch (error) {
      await tx.query('ROLLBACK TO SAVEPOINT tick; RELEASE SAVEPOINT tick');
      const refused = error instanceof BatchError;
      const reason = refused ? `${error.code}: ${error.message}` : `${logReason(error)}; tried again`;
      this.logger.warn(`schedule ${schedule.name}: the tick of ${tick.toISOString()} was not launched: ${reason}`);
      return refused;
    }
  }
}

/** Wakes the schedule loop (schedules changed). */
@Injectable()
export class ScheduleWakeup extends Wakeup {}

/** How often a worker looks for due ticks: each is launched within a second of its time. */
const SCHEDULE_POLL_MS = 250;

/** A worker process's loop that launches the schedules' due ticks. */
@Injectable()
export class ScheduleLoop extends WorkerLoop {
  protected readonly logger = new Logger(ScheduleLoop.name);

  constructor(
    private readonly schedules: JobSchedules,
    wakeup: ScheduleWakeup,
  ) {
    super(wakeup, SCHEDULE_POLL_MS);
  }

  protected async turn(): Promise<boolean> {
    return (await this.schedules.tick()) > 0;
  }
}

/**
 * A cron expression of five fields (minute first) or six (second first) in a time zone, as croner reads it; one that
 * does not parse, never fires or fires more often than once a second, or a time zone that does not exist, is
 * VALIDATION_FAILED.
 */
export function cronOf(expression: string, timeZone: string): Cron {
  const fields = String(expression).trim().split(/\s+/).length;
  if (typeof expression !== 'string' || expression.length > 200 || (fields !== 5 && fields !== 6))
    throw invalidField('cron', 'must have five fields (minute first) or six (second first)');
  if (!validTimeZone(timeZone)) throw invalidField('timeZone', `is not a time zone (IANA, such as Europe/Berlin)`);
  let cron: Cron;
  try {
    cron = new Cron(expression, { timezone: timeZone, paused: true });
  } catch (error) {
    throw invalidField('cron', `does not parse: ${(error as Error).message}`);
  }
  const [first, second] = cron.nextRuns(2);
  if (!first) throw invalidField('cron', 'never fires');
  if (second && second.getTime() - first.getTime() < 1000)
    throw invalidField('cron', 'fires more often than once a second');
  return cron;
}

function validTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return typeof timeZone === 'string' && timeZone.length > 0;
  } catch {
    return false;
  }
}
