import { Injectable, OnApplicationBootstrap, Optional } from '@nestjs/common';
import { HealthCheckResult, HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import type Redis from 'ioredis';
import type { Observable } from 'rxjs';
import { AppConfig } from '../../config/app-config';
import { Database } from '../storage/database';
import { MAIN, NamedDatabases } from '../storage/named-databases';
import { OutboxRelay } from '../outbox/outbox-relay.service';
import { RedisService } from '../storage/redis.service';

const DATABASE_TIMEOUT_MS = 2000;
const REDIS_TIMEOUT_MS = 1000;

/** Rejects with `timeout of N ms exceeded` when `work` takes longer than `ms` (the work itself goes on). */
export async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout of ${ms} ms exceeded`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The database answers `SELECT 1` within DATABASE_TIMEOUT_MS, on the service's own pool. */
@Injectable()
export class DatabaseHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly db: Database,
  ) {}

  async check(key: 'database'): Promise<HealthIndicatorResult<'database'>> {
    const indicator = this.indicators.check(key);
    try {
      await withTimeout(this.db.query('SELECT 1'), DATABASE_TIMEOUT_MS);
      return indicator.up();
    } catch (error) {
      return indicator.down({ message: (error as Error).message });
    }
  }
}

/**
 * The databases of BATCH_DATABASES, each `up` or `down` as its last check found it (NamedDatabases checks them every
 * 10 s): optional, for a database that does not answer stalls only what is read from or written to it.
 */
@Injectable()
export class NamedDatabasesHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly databases: NamedDatabases,
    private readonly db: Database,
  ) {}

  /**
   * Each database of BATCH_DATABASES `up` or `down`, and each database no longer configured whose operations wait
   * for it; null when there are neither.
   */
  async check(key: 'databases'): Promise<HealthIndicatorResult<'databases'> | null> {
    const all = this.databases.all();
    const removed = await withTimeout(this.removedWithPending(all.map(({ name }) => name)), DATABASE_TIMEOUT_MS).catch(
      () => [], // the service's own database is reported down under `database`
    );
    if (all.length === 0 && removed.length === 0) return null;
    const states = Object.fromEntries([
      ...all.map(({ name, up }) => [name, up ? 'up' : 'down']),
      ...removed.map((name) => [name, 'not configured: its operations wait']),
    ]);
    const indicator = this.indicators.check(key);
    return all.every(({ up }) => up) && removed.length === 0 ? indicator.up(states) : indicator.down(states);
  }

  /** Databases that BATCH_DATABASES does not name but operations still pending do (each stream probed once). */
  private async removedWithPending(configured: string[]): Promise<string[]> {
    const rows = await this.db.query<{ database: string }>(
      `SELECT DISTINCT split_part(s.target, ':', 1) AS database FROM batch.streams s
        WHERE s.target LIKE '%:%' AND split_part(s.target, ':', 1) <> ALL ($1)
          AND EXISTS (SELECT FROM batch.operations o WHERE o.target = s.target AND o.priority = s.priority
                         AND o.not_before IS NULL AND o.id > s.taken_through)
       UNION
       SELECT DISTINCT split_part(target, ':', 1) FROM batch.deferred
        WHERE target LIKE '%:%' AND split_part(target, ':', 1) <> ALL ($1)
       ORDER BY 1`,
      [[MAIN, ...configured]],
    );
    return rows.map((row) => row.database);
  }
}

/**
 * The service's own broker connections are up: the RPC consumer's (roles api and all) and the outbox relay's (roles
 * worker and all). Both reconnect by themselves; while either is down, this process cannot do its part. A
 * development process started without a broker serves REST all the same: there the broker is optional (`optional`),
 * and its result says what is missing while it is down.
 */
@Injectable()
export class BrokerHealthIndicator {
  private rpcConsumer = 'not connected yet';
  private missing: string | null = null;

  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly config: AppConfig,
    @Optional() private readonly relay?: OutboxRelay,
  ) {}

  /** Follows the RPC consumer's connection (the RMQ microservice's status: connected, disconnected, blocked, …). */
  watchRpcConsumer(status: Observable<string>): void {
    status.subscribe((state) => (this.rpcConsumer = state === 'unblocked' ? 'connected' : state));
  }

  /** Makes the broker optional for this process (it started without one); `missing` says what to do about it. */
  optional(missing: string): void {
    this.missing = missing;
  }

  get isOptional(): boolean {
    return this.missing !== null;
  }

  check(key: 'broker'): HealthIndicatorResult<'broker'> {
    const connections: Record<string, string> = {};
    if (this.config.role !== 'worker') connections.rpcConsumer = this.rpcConsumer;
    if (this.relay) connections.outboxRelay = this.relay.brokerConnected ? 'connected' : 'disconnected';
    const up = Object.values(connections).every((state) => state === 'connected');
    if (up) return this.indicators.check(key).up(connections);
    return this.indicators.check(key).down(this.missing ? { ...connections, message: this.missing } : connections);
  }
}

/** Redis answers PING within REDIS_TIMEOUT_MS, on a connection of its own. */
@Injectable()
export class RedisHealthIndicator implements OnApplicationBootstrap {
  private connection: Redis | null = null;

  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly redis: RedisService,
  ) {}

  onApplicationBootstrap(): void {
    this.connection = this.redis.connect('health');
  }

  async check(key: 'redis'): Promise<HealthIndicatorResult<'redis'>> {
    const indicator = this.indicators.check(key);
    try {
      if (!this.connection) throw new Error('not connected yet');
      await withTimeout(this.connection.ping(), REDIS_TIMEOUT_MS);
      return indicator.up();
    } catch (error) {
      return indicator.down({ message: (error as Error).message });
    }
  }
}

/**
 * Adds an optional indicator's result to a health check's: listed under `details` (and `info` or `error`), marked
 * `optional: true`, without changing the overall status.
 */
export function withOptionalIndicator(result: HealthCheckResult, optional: HealthIndicatorResult): HealthCheckResult {
  const entries = Object.entries(optional).map(([key, value]) => [key, { ...value, optional: true }] as const);
  const up = Object.fromEntries(entries.filter(([, value]) => value.status === 'up'));
  const down = Object.fromEntries(entries.filter(([, value]) => value.status !== 'up'));
  return {
    ...result,
    info: { ...result.info, ...up },
    error: { ...result.error, ...down },
    details: { ...result.details, ...Object.fromEntries(entries) },
  };
}
