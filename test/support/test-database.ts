import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { AppConfig, loadConfig } from '../../src/config/app-config';
import { dataSourceOptions, migrate } from '../../src/services/storage/database';
import { dbClientConfig, sharedServicesEnv } from './shared-services';

/** A fresh database per test file, with the real migrations applied; dropped by close(). */
export interface TestDatabase {
  name: string;
  config: AppConfig;
  dataSource: DataSource;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export function testConfig(env: Record<string, string> = {}): AppConfig {
  return loadConfig({
    ...sharedServicesEnv(),
    BATCH_ROLE: 'api',
    DB_NAME: uniqueName('batch_test'),
    LOG_LEVEL: 'error',
    ...env,
  });
}

export async function createTestDatabase(env: Record<string, string> = {}): Promise<TestDatabase> {
  const config = testConfig(env);
  await migrate(config);
  const dataSource = await new DataSource({ ...dataSourceOptions(config), migrationsRun: false }).initialize();
  return {
    name: config.db.name,
    config,
    dataSource,
    query: (sql, params) => dataSource.query(sql, params),
    close: async () => {
      if (dataSource.isInitialized) await dataSource.destroy();
      await dropDatabase(config.db.name);
    },
  };
}

/** Drops a test's database, on the server its service's `env` names (the shared one by default). */
export async function dropDatabase(name: string, env: Record<string, string> = {}): Promise<void> {
  const admin = new Client(dbClientConfig('postgres', env));
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/** Creates an empty database `name` on the shared server (a second database of a test's own; dropDatabase drops it). */
export async function createDatabase(name: string): Promise<void> {
  const admin = new Client(dbClientConfig('postgres'));
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
}
