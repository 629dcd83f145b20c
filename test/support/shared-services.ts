import { spawnSync } from 'node:child_process';
import { it } from 'node:test';
import type { ClientConfig } from 'pg';
import { loadConfig } from '../../src/config/app-config';
import { brokerAddress } from '../../src/development-services';

/**
 * Where the tests find PostgreSQL, RabbitMQ and Redis: where the service's own variables say, with its defaults
 * (DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD, BATCH_SERVICE_RMQ_URL, REDIS_URL), so that `npm test` uses the services
 * a user runs wherever they run. Tests never stop or reconfigure them; fault tests break private instances of their
 * own (private-services.ts).
 */
const COORDINATES = ['DB_HOST', 'DB_PORT', 'DB_USERNAME', 'DB_PASSWORD', 'BATCH_SERVICE_RMQ_URL', 'REDIS_URL'] as const;

const given = Object.fromEntries(
  COORDINATES.filter((name) => process.env[name] !== undefined).map((name) => [name, process.env[name]!]),
);
const config = loadConfig(given);

export const RMQ_URL = config.rmq.url;

/** Whether something accepts TCP connections at host and port, asked of a child (test files declare their skips synchronously). */
export function answersNow(host: string, port: number): boolean {
  const probe = `require('node:net').connect({ host: ${JSON.stringify(host)}, port: ${port}, timeout: 2000 })
     .on('connect', () => process.exit(0)).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))`;
  return spawnSync(process.execPath, ['-e', probe], { timeout: 10_000 }).status === 0;
}

const broker = brokerAddress(RMQ_URL);
/**
 * Null when RabbitMQ answers where the tests look; otherwise the line a test that needs it is skipped with (on a
 * machine without it, the tests of the database and of REST run all the same).
 */
export const BROKER_MISSING = answersNow(broker.host, broker.port)
  ? null
  : `needs RabbitMQ at ${broker.shown}: docker compose up -d rabbitmq, or apt install rabbitmq-server (brew install rabbitmq)`;

/**
 * The first line of a suite that needs RabbitMQ, as `if (withoutBroker()) return;`: where it is missing, the suite
 * holds one skipped test saying what to install, and registers nothing else (no hook starts a service).
 */
export function withoutBroker(): boolean {
  if (!BROKER_MISSING) return false;
  it('runs against RabbitMQ', { skip: BROKER_MISSING }, () => undefined);
  return true;
}

export const REDIS_URL = config.redisUrl;

/** The PostgreSQL server of the tests: host, port, user and password. */
export type DbServer = Pick<ClientConfig, 'host' | 'port' | 'user' | 'password'>;

export const SHARED_DB: DbServer = {
  host: config.db.host,
  port: config.db.port,
  user: config.db.username,
  password: config.db.password,
};

/** A database of the shared server as BATCH_DATABASES names one: its `postgres://` URL. */
export function sharedDatabaseUrl(database: string): string {
  const { user, password, host, port } = SHARED_DB;
  return `postgres://${user}:${encodeURIComponent(String(password ?? ''))}@${host}:${port}/${database}`;
}

/** The service's variables that point it at the shared services. */
export function sharedServicesEnv(): Record<string, string> {
  return {
    DB_HOST: config.db.host,
    DB_PORT: String(config.db.port),
    DB_USERNAME: config.db.username,
    DB_PASSWORD: config.db.password,
    BATCH_SERVICE_RMQ_URL: RMQ_URL,
    REDIS_URL,
  };
}

/** A connection's settings for a database of a test's server (the shared one unless a service's env names another). */
export function dbClientConfig(database: string, env: Record<string, string | undefined> = {}): ClientConfig {
  return {
    ...SHARED_DB,
    ...(env.DB_HOST ? { host: env.DB_HOST } : {}),
    ...(env.DB_PORT ? { port: Number(env.DB_PORT) } : {}),
    ...(env.DB_USERNAME ? { user: env.DB_USERNAME } : {}),
    ...(env.DB_PASSWORD !== undefined ? { password: env.DB_PASSWORD } : {}),
    database,
  };
}
