import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Pool, PoolClient, types } from 'pg';
import { clientConfig, inTransaction, POOL_SETTINGS } from './pg-client';
import { parseJson } from '../exact-json';
import { DataSource, DataSourceOptions, MigrationInterface } from 'typeorm';
import { AppConfig } from '../../config/app-config';
import { MIGRATION_LOCK } from './advisory-locks';
import { ENTITIES } from '../../entities';

/**
 * The migrations, one class a file in src/migrations named after its timestamp, in their order: each file's exported
 * class.
 */
export const MIGRATIONS: (new () => MigrationInterface)[] = readdirSync(join(__dirname, '..', '..', 'migrations'))
  .filter((file) => /^\d{13}-.*\.js$/.test(file))
  .sort()
  .map((file) => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- the files found are the list: none is named twice
    const module = require(join(__dirname, '..', '..', 'migrations', file)) as Record<
      string,
      new () => MigrationInterface
    >;
    return Object.values(module)[0];
  });

/** Creates the service's database when it is missing and the user may create it. */
async function ensureDatabase(db: AppConfig['db']): Promise<void> {
  const admin = new Client(clientConfig(db, 'postgres'));
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [db.name]);
    if (rowCount === 0) {
      await admin.query(`CREATE DATABASE ${quoteIdent(db.name)}`).catch((error: { code?: string }) => {
        // created meanwhile by another instance: "already exists", or a unique violation when both raced
        if (error.code !== '42P04' && error.code !== '23505') throw error;
      });
    }
  } finally {
    await admin.end();
  }
}

/**
 * Makes the database ready for its migrations and serializes start-up across instances: the migrations run (when
 * the app initializes TypeORM) while this session-level advisory lock is held, so that instances starting together
 * on a new database do not race. TypeORM's own table of applied migrations lives in the service's schema, never
 * among the targets; a database from before that (the table in the search path's first schema, `public`) has it
 * moved here first. Returns the release of the lock.
 */
export async function prepareMigrations(db: AppConfig['db']): Promise<() => Promise<void>> {
  await ensureDatabase(db);
  const client = new Client(clientConfig(db));
  await client.connect();
  const release = async () => {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await client.end().catch(() => undefined);
  };
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS batch`);
    await client.query(`
      DO $$
      DECLARE ours boolean;
      BEGIN
        IF to_regclass('batch.migrations') IS NULL AND to_regclass('migrations') IS NOT NULL THEN
          EXECUTE 'SELECT EXISTS (SELECT 1 FROM migrations WHERE name = $1)' INTO ours USING '${MIGRATIONS[0].name}';
          IF ours THEN ALTER TABLE migrations SET SCHEMA batch; END IF;
        END IF;
      END $$`);
  } catch (error) {
    await release();
    throw error;
  }
  return release;
}

/**
 * Where the long-lived functions and views are defined, one file each, in the repository (dist/ and build/ both sit
 * three folders above this file's): read where they are written, so that no build step copies them.
 */
export const DEFINITIONS = join(__dirname, '..', '..', '..', '..', 'src', 'migrations', 'definitions');

/**
 * Applies the definitions (DEFINITIONS, in the order of their names) when they are not the ones applied last: each
 * replaces its function or view. Versioned migrations keep the texts of their time; these are the current ones.
 */
export async function applyDefinitions(source: DataSource): Promise<void> {
  const texts = readdirSync(DEFINITIONS)
    .filter((file) => file.endsWith('.sql'))
    .sort()
    .map((file) => readFileSync(join(DEFINITIONS, file), 'utf8'));
  const checksum = createHash('sha256').update(texts.join('\u0000')).digest('hex');
  const [applied] = (await source.query('SELECT checksum FROM batch.definitions')) as { checksum: string }[];
  if (applied?.checksum === checksum) return;
  await source.transaction(async (manager) => {
    for (const text of texts) await manager.query(text);
    await manager.query('DELETE FROM batch.definitions');
    await manager.query('INSERT INTO batch.definitions (checksum) VALUES ($1)', [checksum]);
  });
}

/**
 * Brings the database to the current schema before anything uses it: creates it when missing, runs the migrations not
 * applied yet, then the definitions; one instance at a time (prepareMigrations' lock).
 */
export async function migrate(config: AppConfig): Promise<void> {
  const release = await prepareMigrations(config.db);
  try {
    const source = await new DataSource(dataSourceOptions(config)).initialize();
    try {
      await applyDefinitions(source);
    } finally {
      await source.destroy();
    }
  } finally {
    await release();
  }
}

/** TypeORM's options for the service's database; `migrationsRun` is for migrate(), which runs them first. */
export function dataSourceOptions(config: AppConfig): DataSourceOptions {
  return {
    type: 'postgres',
    host: config.db.host,
    port: config.db.port,
    database: config.db.name,
    username: config.db.username,
    password: config.db.password,
    schema: 'batch', // where TypeORM keeps its table of applied migrations (the entities name their schema anyway)
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsRun: true,
    migrationsTransactionMode: 'all',
    synchronize: false,
    logging: ['migration'], // failures are reported where they are handled, not as raw SQL
    applicationName: `batch-service:${config.role}`,
    extra: {
      max: config.db.poolSize,
      ...POOL_SETTINGS,
      // jsonb read as exactly as requests are (an operation's values, echoed by getOperation)
      types: {
        getTypeParser: (oid: number, format?: 'text' | 'binary') =>
          oid === JSONB_OID ? parseJson : types.getTypeParser(oid, format),
      },
    },
  };
}

const JSONB_OID = 3802;

/** Quotes an SQL identifier. Identifiers only ever come from the catalog or the configuration. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes a name from the catalog as an SQL string literal (an escape string: whatever standard_conforming_strings is). */
export function quoteLiteral(name: string): string {
  return `E'${name.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A PostgreSQL array literal of numbers (and NULLs): read by PostgreSQL at once, never escaped element by element. */
export function numberArray(values: (string | number | null)[]): string {
  return `{${values.map((value) => value ?? 'NULL').join(',')}}`;
}

/**
 * A statement node-postgres prepares once per connection, under its name, and runs by name after: the statements that
 * run all the time (an ingest flush; a chunk's targets, claim and record; the relay's) took several times as long when
 * PostgreSQL parsed and planned them at every run. PostgreSQL plans one again when a table's statistics change (ANALYZE). Only for texts of
 * their own: node-postgres refuses a name given to two texts.
 */
export interface NamedStatement {
  name: string;
  text: string;
}

/**
 * Raw SQL on the pool TypeORM opened: rows as they come from `pg`, and explicit transactions on one
 * connection. The chunk engine and the ingest path use it; TypeORM repositories serve simple reads.
 */
@Injectable()
export class Database implements OnModuleInit {
  private readonly logger = new Logger(Database.name);

  constructor(readonly dataSource: DataSource) {}

  /**
   * Opens every connection of the pool before the process says it is ready, and before the background loops start
   * (they start at the application's bootstrap, which follows every module's init): a connection opened under the
   * first requests or chunks after a deploy costs the database 10-20 ms of CPU (a backend started, its first
   * statement), when the process is busiest warming up, and the first chunk waited for it. Not fatal: the pool opens
   * what it lacks when it is needed.
   */
  async onModuleInit(): Promise<void> {
    const opening = Array.from({ length: this.pool.options.max }, () => this.pool.connect());
    const opened = await Promise.allSettled(opening);
    for (const result of opened) if (result.status === 'fulfilled') result.value.release();
    const failed = opened.find((result) => result.status === 'rejected');
    if (failed) this.logger.warn(`database pool not opened whole at start: ${String(failed.reason)}`);
  }

  get pool(): Pool {
    return (this.dataSource.driver as unknown as { master: Pool }).master;
  }

  async query<T = Record<string, unknown>>(sql: string | NamedStatement, params?: unknown[]): Promise<T[]> {
    const statement = typeof sql === 'string' ? { text: sql } : sql;
    return (await this.pool.query({ ...statement, values: params })).rows as T[];
  }

  /** Runs `work` in one transaction on one connection of the pool (inTransaction). */
  transaction<T>(work: (tx: PoolClient) => Promise<T>, setup?: string): Promise<T> {
    return inTransaction(this.pool, work, setup);
  }
}
