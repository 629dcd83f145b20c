import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/app-config';

const STRONG_SECRET = '0123456789abcdefghijklmnopqrstuv'; // 32 characters, 32 different
const STRONG_ADMIN_KEY = 'admin-key-0123456789-abcdefghijk'; // 32 characters

/** Asserts that loading `env` fails with a ConfigError naming `variable`. */
function assertRejects(env: Record<string, string | undefined>, variable: string): void {
  assert.throws(
    () => loadConfig(env),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      assert.match(error.message, new RegExp(`\\b${variable}\\b`), `message should name ${variable}: ${error.message}`);
      return true;
    },
  );
}

describe('loadConfig: defaults (docs/configuration.md)', () => {
  const config = loadConfig({});

  it('serves a local machine with the documented defaults', () => {
    assert.equal(config.nodeEnv, 'development');
    assert.equal(config.port, 3000);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.role, 'all');
    assert.deepEqual(config.db, {
      host: '127.0.0.1',
      port: 5432,
      name: 'batch_service',
      username: 'postgres',
      password: '',
      poolSize: 10,
      embedded: true,
    });
    assert.equal(config.rmq.url, 'amqp://guest:guest@127.0.0.1:5672');
    assert.equal(config.rmq.queue, 'batch_service');
    assert.equal(config.rmq.eventsExchange, 'batch_service.events');
    assert.equal(config.rmq.warmUpRequests, 2000);
    assert.equal(config.redisUrl, 'redis://127.0.0.1:6379');
    assert.deepEqual(config.targetSchemas, ['public']);
    assert.equal(config.adminApiKey, undefined);
  });

  it('has positive polling defaults and no skip limit', () => {
    assert.equal(config.poll.intervalMs, 100);
    assert.equal(config.poll.limit, 1000);
    assert.equal(config.poll.maxLimit, 20_000);
    assert.equal(config.poll.statementMaxRows, 5000);
    assert.equal(config.poll.skipLimit, null);
    assert.ok(config.apiKeySecret.length >= 32, 'development falls back to a built-in secret');
  });

  it('treats empty strings as unset', () => {
    const empty = loadConfig({
      PORT: '',
      BATCH_ROLE: '',
      DB_HOST: '',
      BATCH_TARGET_SCHEMAS: '',
      BATCH_ADMIN_API_KEY: '',
    });
    assert.equal(empty.port, 3000);
    assert.equal(empty.role, 'all');
    assert.equal(empty.db.host, '127.0.0.1');
    assert.deepEqual(empty.targetSchemas, ['public']);
    assert.equal(empty.adminApiKey, undefined);
  });
});

describe('loadConfig: the embedded PostgreSQL of development', () => {
  it('may run only in development with no DB_* variable set (an empty one is unset)', () => {
    assert.equal(loadConfig({}).db.embedded, true);
    assert.equal(loadConfig({ DB_HOST: '', NODE_ENV: 'development' }).db.embedded, true);
    for (const variable of ['DB_HOST', 'DB_PORT', 'DB_NAME', 'DB_USERNAME', 'DB_PASSWORD', 'DB_POOL_SIZE'])
      assert.equal(
        loadConfig({ [variable]: variable === 'DB_HOST' ? '127.0.0.1' : '10' }).db.embedded,
        false,
        variable,
      );
    assert.equal(loadConfig({ NODE_ENV: 'production', API_KEY_ENCRYPTION_SECRET: STRONG_SECRET }).db.embedded, false);
  });
});

describe('loadConfig: valid values', () => {
  it('reads every documented variable', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      PORT: '8080',
      LOG_LEVEL: 'debug',
      BATCH_ROLE: 'worker',
      DB_HOST: 'db.internal',
      DB_PORT: '6543',
      DB_NAME: 'batch-prod',
      DB_USERNAME: 'svc',
      DB_PASSWORD: 'p@ss word',
      BATCH_SERVICE_RMQ_URL: 'amqps://u:p@rabbit:5671/vhost',
      BATCH_SERVICE_RMQ_QUEUE: 'batch.queue',
      BATCH_SERVICE_EVENTS_EXCHANGE: 'events:x',
      BATCH_WARMUP_REQUESTS: '0',
      REDIS_URL: 'rediss://cache:6380/2',
      API_KEY_ENCRYPTION_SECRET: STRONG_SECRET,
      BATCH_ADMIN_API_KEY: STRONG_ADMIN_KEY,
      BATCH_TARGET_SCHEMAS: ' public , sales,_x$1 ',
      BATCH_PROCESS_OPERATION_INTERVAL: '250',
      BATCH_PROCESS_OPERATION_LIMIT: '5000',
      BATCH_CHUNK_MAX_OPERATIONS: '40000',
      BATCH_STATEMENT_MAX_ROWS: '200',
      BATCH_SKIP_LIMIT: '3',
      BATCH_CHUNK_MAX_BYTES: '1048576',
      BATCH_STATEMENT_MAX_BYTES: '65536',
      BATCH_CHUNK_RETRY_LIMIT: '5',
      BATCH_LOCK_TIMEOUT: '2500',
      BATCH_CHUNK_LEASE_MS: '15000',
      BATCH_NOT_BEFORE_MAX_DAYS: '30',
    });
    assert.equal(config.nodeEnv, 'production');
    assert.equal(config.port, 8080);
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.role, 'worker');
    assert.deepEqual(config.db, {
      host: 'db.internal',
      port: 6543,
      name: 'batch-prod',
      username: 'svc',
      password: 'p@ss word',
      poolSize: 10,
      embedded: false,
    });
    assert.equal(config.rmq.url, 'amqps://u:p@rabbit:5671/vhost');
    assert.equal(config.rmq.queue, 'batch.queue');
    assert.equal(config.rmq.eventsExchange, 'events:x');
    assert.equal(config.rmq.warmUpRequests, 0);
    assert.equal(config.redisUrl, 'rediss://cache:6380/2');
    assert.equal(config.apiKeySecret, STRONG_SECRET);
    assert.equal(config.adminApiKey, STRONG_ADMIN_KEY);
    assert.deepEqual(config.targetSchemas, ['public', 'sales', '_x$1']);
    assert.deepEqual(config.poll, {
      intervalMs: 250,
      limit: 5000,
      maxLimit: 40_000,
      statementMaxRows: 200,
      skipLimit: 3,
      maxChunkBytes: 1_048_576,
      maxStatementBytes: 65_536,
      retryLimit: 5,
      lockTimeoutMs: 2500,
      leaseMs: 15000,
    });
    assert.equal(config.limits.notBeforeMaxDays, 30);
  });

  it('accepts each role', () => {
    for (const role of ['all', 'api', 'worker'] as const) assert.equal(loadConfig({ BATCH_ROLE: role }).role, role);
  });

  it('accepts the bounds of PORT and surrounding whitespace', () => {
    assert.equal(loadConfig({ PORT: '0' }).port, 0);
    assert.equal(loadConfig({ PORT: '65535' }).port, 65535);
    assert.equal(loadConfig({ PORT: ' 3001 ' }).port, 3001);
  });

  it('accepts a skip limit of 0 (fail the execution at the first failed operation)', () => {
    assert.equal(loadConfig({ BATCH_SKIP_LIMIT: '0' }).poll.skipLimit, 0);
    assert.equal(loadConfig({ BATCH_PROCESS_OPERATION_LIMIT: '30000' }).poll.maxLimit, 30_000, 'never below the limit');
    const config = loadConfig({});
    assert.throws(() => ((config.poll as { limit: number }).limit = 5), TypeError, 'read-only: built once, frozen');
    assert.equal(loadConfig({ BATCH_SKIP_LIMIT: '' }).poll.skipLimit, null);
  });

  it('accepts an admin key of 8 characters outside production', () => {
    assert.equal(loadConfig({ BATCH_ADMIN_API_KEY: '12345678' }).adminApiKey, '12345678');
  });

  it('accepts a 32-character secret in production', () => {
    assert.equal(
      loadConfig({ NODE_ENV: 'production', API_KEY_ENCRYPTION_SECRET: STRONG_SECRET }).apiKeySecret,
      STRONG_SECRET,
    );
  });
});

describe('loadConfig: invalid values throw a ConfigError naming the variable', () => {
  it('PORT that is not an integer', () => {
    for (const port of ['abc', '3000.5', '1e3', '30 00', '0x10', ' ']) assertRejects({ PORT: port }, 'PORT');
  });

  it('PORT out of range', () => {
    assertRejects({ PORT: '65536' }, 'PORT');
    assertRejects({ PORT: '-1' }, 'PORT');
    assertRejects({ PORT: '99999999999999999999' }, 'PORT');
  });

  it('DB_PORT out of range or not an integer', () => {
    assertRejects({ DB_PORT: '0' }, 'DB_PORT');
    assertRejects({ DB_PORT: '70000' }, 'DB_PORT');
    assertRejects({ DB_PORT: 'postgres' }, 'DB_PORT');
  });

  it('polling and pool sizes out of range', () => {
    assertRejects({ BATCH_PROCESS_OPERATION_INTERVAL: '0' }, 'BATCH_PROCESS_OPERATION_INTERVAL');
    assertRejects({ BATCH_PROCESS_OPERATION_INTERVAL: '1.5' }, 'BATCH_PROCESS_OPERATION_INTERVAL');
    assertRejects({ BATCH_PROCESS_OPERATION_LIMIT: '0' }, 'BATCH_PROCESS_OPERATION_LIMIT');
    assertRejects({ BATCH_PROCESS_OPERATION_LIMIT: '50001' }, 'BATCH_PROCESS_OPERATION_LIMIT');
    assertRejects({ DB_POOL_SIZE: '1' }, 'DB_POOL_SIZE');
    assertRejects({ BATCH_STATEMENT_MAX_ROWS: '0' }, 'BATCH_STATEMENT_MAX_ROWS');
    assertRejects({ BATCH_SKIP_LIMIT: '-1' }, 'BATCH_SKIP_LIMIT');
    assertRejects({ BATCH_SKIP_LIMIT: 'none' }, 'BATCH_SKIP_LIMIT');
    assertRejects({ BATCH_OUTBOX_INTERVAL: '0' }, 'BATCH_OUTBOX_INTERVAL');
    assertRejects({ BATCH_CATALOG_TTL: '-5' }, 'BATCH_CATALOG_TTL');
    assertRejects({ BATCH_RMQ_PREFETCH: '0' }, 'BATCH_RMQ_PREFETCH');
    assertRejects({ BATCH_WARMUP_REQUESTS: '-1' }, 'BATCH_WARMUP_REQUESTS');
  });

  it('BATCH_ROLE outside all | api | worker', () => {
    assertRejects({ BATCH_ROLE: 'both' }, 'BATCH_ROLE');
    assertRejects({ BATCH_ROLE: 'API' }, 'BATCH_ROLE');
  });

  it('LOG_LEVEL outside error | warn | info | debug', () => {
    assertRejects({ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL');
  });

  it('BATCH_SERVICE_RMQ_URL that is not an amqp URL', () => {
    assertRejects({ BATCH_SERVICE_RMQ_URL: 'not a url' }, 'BATCH_SERVICE_RMQ_URL');
    assertRejects({ BATCH_SERVICE_RMQ_URL: 'http://127.0.0.1:5672' }, 'BATCH_SERVICE_RMQ_URL');
  });

  it('REDIS_URL that is not a redis URL', () => {
    assertRejects({ REDIS_URL: '127.0.0.1:6379:x' }, 'REDIS_URL');
    assertRejects({ REDIS_URL: 'amqp://127.0.0.1:6379' }, 'REDIS_URL');
  });

  it('names with forbidden characters', () => {
    assertRejects({ DB_NAME: 'batch service' }, 'DB_NAME');
    assertRejects({ BATCH_SERVICE_RMQ_QUEUE: 'queue/1' }, 'BATCH_SERVICE_RMQ_QUEUE');
    assertRejects({ BATCH_SERVICE_EVENTS_EXCHANGE: 'x'.repeat(201) }, 'BATCH_SERVICE_EVENTS_EXCHANGE');
  });

  it('BATCH_TARGET_SCHEMAS with an invalid schema name', () => {
    assertRejects({ BATCH_TARGET_SCHEMAS: 'public,my-schema' }, 'BATCH_TARGET_SCHEMAS');
    assertRejects({ BATCH_TARGET_SCHEMAS: '1abc' }, 'BATCH_TARGET_SCHEMAS');
    assertRejects({ BATCH_TARGET_SCHEMAS: 'public;drop' }, 'BATCH_TARGET_SCHEMAS');
    assertRejects({ BATCH_TARGET_SCHEMAS: 'a'.repeat(64) }, 'BATCH_TARGET_SCHEMAS');
  });

  it('BATCH_TARGET_SCHEMAS including the service\'s own schema "batch"', () => {
    assertRejects({ BATCH_TARGET_SCHEMAS: 'batch' }, 'BATCH_TARGET_SCHEMAS');
    assertRejects({ BATCH_TARGET_SCHEMAS: 'public, batch' }, 'BATCH_TARGET_SCHEMAS');
  });

  it('BATCH_TARGET_SCHEMAS including a system schema', () => {
    for (const schema of [
      'pg_catalog',
      'information_schema',
      'pg_toast',
      'PG_CATALOG',
      'pg_temp_3',
      'public,information_schema',
    ]) {
      assertRejects({ BATCH_TARGET_SCHEMAS: schema }, 'BATCH_TARGET_SCHEMAS');
    }
  });

  it('BATCH_NOT_BEFORE_MAX_DAYS that is not a whole number of days from 1', () => {
    assertRejects({ BATCH_NOT_BEFORE_MAX_DAYS: '0' }, 'BATCH_NOT_BEFORE_MAX_DAYS');
    assertRejects({ BATCH_NOT_BEFORE_MAX_DAYS: '1.5' }, 'BATCH_NOT_BEFORE_MAX_DAYS');
  });

  it('BATCH_TARGET_SCHEMAS naming no schema at all', () => {
    assertRejects({ BATCH_TARGET_SCHEMAS: ' , ' }, 'BATCH_TARGET_SCHEMAS');
  });

  it('production without API_KEY_ENCRYPTION_SECRET', () => {
    assertRejects({ NODE_ENV: 'production' }, 'API_KEY_ENCRYPTION_SECRET');
    assertRejects({ NODE_ENV: 'production', API_KEY_ENCRYPTION_SECRET: '' }, 'API_KEY_ENCRYPTION_SECRET');
  });

  it('production with an API_KEY_ENCRYPTION_SECRET shorter than 32 characters', () => {
    assertRejects({ NODE_ENV: 'production', API_KEY_ENCRYPTION_SECRET: 's'.repeat(31) }, 'API_KEY_ENCRYPTION_SECRET');
  });

  it('a production secret or admin key that repeats a few characters, or is the development secret', () => {
    assertRejects({ NODE_ENV: 'production', API_KEY_ENCRYPTION_SECRET: 's'.repeat(64) }, 'API_KEY_ENCRYPTION_SECRET');
    assertRejects(
      { NODE_ENV: 'production', API_KEY_ENCRYPTION_SECRET: 'batch-service-development-secret-change-me' },
      'API_KEY_ENCRYPTION_SECRET',
    );
    assertRejects(
      {
        NODE_ENV: 'production',
        API_KEY_ENCRYPTION_SECRET: STRONG_SECRET,
        BATCH_ADMIN_API_KEY: 'abababababababababababababababab',
      },
      'BATCH_ADMIN_API_KEY',
    );
  });

  it('BATCH_ADMIN_API_KEY shorter than 8 characters', () => {
    assertRejects({ BATCH_ADMIN_API_KEY: '1234567' }, 'BATCH_ADMIN_API_KEY');
  });

  it('BATCH_ADMIN_API_KEY shorter than 32 characters in production', () => {
    assertRejects(
      { NODE_ENV: 'production', API_KEY_ENCRYPTION_SECRET: STRONG_SECRET, BATCH_ADMIN_API_KEY: 'a'.repeat(31) },
      'BATCH_ADMIN_API_KEY',
    );
  });
});
