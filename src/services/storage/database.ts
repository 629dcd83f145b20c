import { Injectable } from '@nestjs/common';
import { Client, ClientConfig, Pool, PoolClient, types } from 'pg';
import { parseJson } from '../exact-json';
import { DataSource, DataSourceOptions } from 'typeorm';
import { AppConfig } from '../../config/app-config';
import { MIGRATION_LOCK } from './advisory-locks';
import { ENTITIES } from '../../entities';
import { InitialSchema1763700000000 } from '../../migrations/1763700000000-initial-schema';
import { RetentionIndexes1763800000000 } from '../../migrations/1763800000000-retention-indexes';
import { LighterSettlement1763900000000 } from '../../migrations/1763900000000-lighter-settlement';
import { IngestHorizon1764000000000 } from '../../migrations/1764000000000-ingest-horizon';
import { ClientsNeverDeleted1764100000000 } from '../../migrations/1764100000000-clients-never-deleted';
import { OperationCounts1764200000000 } from '../../migrations/1764200000000-operation-counts';
import { ExecutionClients1764300000000 } from '../../migrations/1764300000000-execution-clients';
import { PlanningAtIngest1764400000000 } from '../../migrations/1764400000000-planning-at-ingest';
import { PendingAndOutcomes1764500000000 } from '../../migrations/1764500000000-pending-and-outcomes';
import { NotificationsWrittenWithChunks1764700000000 } from '../../migrations/1764700000000-notifications-written-with-chunks';
import { SettledRuns1764800000000 } from '../../migrations/1764800000000-settled-runs';
import { MessagesMadeWhenSent1764900000000 } from '../../migrations/1764900000000-messages-made-when-sent';
import { RequestsRecordedOnce1765000000000 } from '../../migrations/1765000000000-requests-recorded-once';
import { OperationsTakenFromStreams1765100000000 } from '../../migrations/1765100000000-operations-taken-from-streams';
import { RequestsWithTheirIds1765200000000 } from '../../migrations/1765200000000-requests-with-their-ids';
import { ClientChangesNotified1765300000000 } from '../../migrations/1765300000000-client-changes-notified';
import { StatementsAppliedInParts1765400000000 } from '../../migrations/1765400000000-statements-applied-in-parts';
import { TargetsDeferredOnLocks1765500000000 } from '../../migrations/1765500000000-targets-deferred-on-locks';
import { GrantsReadByChunks1765600000000 } from '../../migrations/1765600000000-grants-read-by-chunks';
import { ClientsReadThroughTheirIndexes1765700000000 } from '../../migrations/1765700000000-clients-read-through-their-indexes';
import { ClientInsertsNotified1765800000000 } from '../../migrations/1765800000000-client-inserts-notified';

export const MIGRATIONS = [
  InitialSchema1763700000000,
  RetentionIndexes1763800000000,
  LighterSettlement1763900000000,
  IngestHorizon1764000000000,
  ClientsNeverDeleted1764100000000,
  OperationCounts1764200000000,
  ExecutionClients1764300000000,
  PlanningAtIngest1764400000000,
  PendingAndOutcomes1764500000000,
  NotificationsWrittenWithChunks1764700000000,
  SettledRuns1764800000000,
  MessagesMadeWhenSent1764900000000,
  RequestsRecordedOnce1765000000000,
  OperationsTakenFromStreams1765100000000,
  RequestsWithTheirIds1765200000000,
  ClientChangesNotified1765300000000,
  StatementsAppliedInParts1765400000000,
  TargetsDeferredOnLocks1765500000000,
  GrantsReadByChunks1765600000000,
  ClientsReadThroughTheirIndexes1765700000000,
  ClientInsertsNotified1765800000000,
];

/** Connection settings of a single pg Client for the configured database (or another one on the same server). */
export function clientConfig(db: AppConfig['db'], database = db.name): ClientConfig {
  return { host: db.host, port: db.port, user: db.username, password: db.password, database };
}

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
          EXECUTE 'SELECT EXISTS (SELECT 1 FROM migrations WHERE name = $1)' INTO ours USING '${InitialSchema1763700000000.name}';
          IF ours THEN ALTER TABLE migrations SET SCHEMA batch; END IF;
        END IF;
      END $$`);
  } catch (error) {
    await release();
    throw error;
  }
  return release;
}

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
      connectionTimeoutMillis: 5000,
      // The service's statements are short even over thousands of rows: compiling one (PostgreSQL's JIT, for a plan
      // estimated expensive) took 50-200 ms, more than running it, and never paid back here.
      options: '-c jit=off',
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
 * run all the time (an ingest flush; a chunk's targets, claim and record; the relay's) took 3-4 times as long when
 * PostgreSQL parsed and planned them at every run (0.93 against 0.31 ms for a flush of one create, 0.80 against 0.20
 * for a chunk's targets). PostgreSQL plans one again when a table's statistics change (ANALYZE). Only for texts of
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
export class Database {
  constructor(readonly dataSource: DataSource) {}

  get pool(): Pool {
    return (this.dataSource.driver as unknown as { master: Pool }).master;
  }

  async query<T = Record<string, unknown>>(sql: string | NamedStatement, params?: unknown[]): Promise<T[]> {
    const statement = typeof sql === 'string' ? { text: sql } : sql;
    return (await this.pool.query({ ...statement, values: params })).rows as T[];
  }

  /**
   * Runs `work` in one transaction on one connection; rolls back when it throws. A connection that dies meanwhile
   * (the database restarted) fails the running query, is destroyed instead of returned to the pool, and never
   * raises an unhandled 'error' event. `setup` (parameterless statements, such as SET) goes with the BEGIN.
   */
  async transaction<T>(work: (tx: PoolClient) => Promise<T>, setup?: string): Promise<T> {
    const tx = await this.pool.connect();
    let broken = false;
    const onError = () => (broken = true);
    tx.on('error', onError);
    try {
      await tx.query(setup ? `BEGIN; ${setup}` : 'BEGIN');
      const result = await work(tx);
      await tx.query('COMMIT');
      return result;
    } catch (error) {
      await tx.query('ROLLBACK').catch(() => (broken = true));
      throw error;
    } finally {
      tx.off('error', onError);
      tx.release(broken ? true : undefined);
    }
  }
}
