import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Pool, type PoolClient, type QueryConfig } from 'pg';
import { AppConfig } from '../../config/app-config';
import type { NamedDatabase } from '../../config/databases';
import { POOL_SETTINGS, usingConnection } from './pg-client';

/** The service's own database, as names spell it (`main:public.orders`). */
export const MAIN = 'main';

/**
 * The database a table's name (`[database:][schema.]table`) is in, and the name within it: the text before the first
 * `:` is always a database's name; without one, the table is in `main`.
 */
export function databaseOf(name: string): { database: string; local: string } {
  const colon = name.indexOf(':');
  return colon < 0 ? { database: MAIN, local: name } : { database: name.slice(0, colon), local: name.slice(colon + 1) };
}

/** How often an unreachable database is tried again, and how long a check may take. */
const CHECK_INTERVAL_MS = 10_000;
const CHECK_TIMEOUT_MS = 2000;

/** A database of BATCH_DATABASES with its pool, and what its last check found. */
export interface ConnectedDatabase extends NamedDatabase {
  pool: Pool;
  /** One connection of its own for the checks, so that a pool busy with work never reads as a database down. */
  checks: Pool;
  /** Whether it answered its last check (null before the first). */
  up: boolean | null;
}

/**
 * The databases other than the service's own (BATCH_DATABASES): a pool each, opened as they are used, and checked at
 * start and every CHECK_INTERVAL_MS, so that `/health` and the metrics tell which answer. A database that does not
 * answer is reported (its host, port and name, never its URL) and tried again; it never stops the service.
 */
@Injectable()
export class NamedDatabases implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(NamedDatabases.name);
  private readonly databases = new Map<string, ConnectedDatabase>();
  private timer: NodeJS.Timeout | null = null;

  constructor(config: AppConfig) {
    for (const database of config.databases) {
      const open = (max: number) => {
        const pool = new Pool({
          connectionString: database.url,
          max,
          ...POOL_SETTINGS,
          // unlike the service's own, opened as used: a database a copy read once keeps no connection open
          idleTimeoutMillis: 30_000,
          application_name: 'batch-service',
        });
        // a connection that dies while idle is dropped by the pool; its error says so here, without the URL
        pool.on('error', (error) =>
          this.logger.warn(`database ${database.name} (${database.where}): ${error.message}`),
        );
        return pool;
      };
      this.databases.set(database.name, { ...database, pool: open(database.poolSize), checks: open(1), up: null });
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.databases.size === 0) return;
    await this.checkAll();
    this.timer = setInterval(() => void this.checkAll(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const pools = [...this.databases.values()].flatMap((database) => [database.pool, database.checks]);
    await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)));
  }

  /** The database of that name, or undefined when BATCH_DATABASES names none (`main` is not among them). */
  get(name: string): ConnectedDatabase | undefined {
    return this.databases.get(name);
  }

  all(): ConnectedDatabase[] {
    return [...this.databases.values()];
  }

  /**
   * A statement in `name`, on a connection of its pool; with `timeoutMs`, one that has not answered by then fails as a
   * lost connection would, and its connection is closed (a server that stopped answering keeps none).
   */
  async query<T>(name: string, sql: string, params?: unknown[], timeoutMs?: number): Promise<T[]> {
    return queryOn<T>(this.require(name).pool, sql, params, timeoutMs);
  }

  /**
   * `work` on a connection of `name`'s pool, given back after it (closed where `work` failed: it may be in the middle
   * of a COPY). A connection that dies meanwhile (the server stopped) fails `work`, never the process.
   */
  using<T>(name: string, work: (connection: PoolClient) => Promise<T>): Promise<T> {
    return usingConnection(this.require(name).pool, work, (error) =>
      this.logger.warn(`database ${name}: ${error.message}`),
    );
  }

  /** A database that failed a statement for want of a connection: down until its next check answers. */
  markDown(name: string, error: unknown): void {
    const database = this.databases.get(name);
    if (!database || database.up === false) return;
    database.up = false;
    this.logger.warn(`database ${name} (${database.where}) does not answer: ${(error as Error).message}; tried again`);
  }

  /** Checks each database (`SELECT 1` within CHECK_TIMEOUT_MS); a change of state is logged. */
  async checkAll(): Promise<void> {
    await Promise.all(
      this.all().map(async (database) => {
        // past the deadline, a connection being opened goes on (connectionTimeoutMillis); a statement sent is given up
        const problem = await withDeadline(queryOn(database.checks, 'SELECT 1', [], CHECK_TIMEOUT_MS)).then(
          () => null,
          (error: Error) => error.message,
        );
        const up = problem === null;
        if (up !== database.up) {
          if (up) this.logger.log(`database ${database.name} (${database.where}) answers`);
          else
            this.logger.warn(`database ${database.name} (${database.where}) does not answer: ${problem}; tried again`);
        }
        database.up = up;
      }),
    );
  }

  private require(name: string): ConnectedDatabase {
    const database = this.databases.get(name);
    if (!database) throw new Error(`no database "${name}" in BATCH_DATABASES`);
    return database;
  }
}

function withDeadline<T>(work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

async function queryOn<T>(pool: Pool, sql: string, params?: unknown[], timeoutMs?: number): Promise<T[]> {
  const statement: QueryConfig & { query_timeout?: number } = { text: sql, values: params, query_timeout: timeoutMs };
  return (await pool.query(statement)).rows as T[];
}
