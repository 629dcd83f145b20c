import { ConfigError } from './config-error';
import { NamedDatabase, parseDatabases } from './databases';

/**
 * The service's configuration: read from the environment once, validated, typed.
 * Nothing else in the code reads process.env.
 */
export type BatchRole = 'all' | 'api' | 'worker';

/** Read-only: built once at boot (frozen); a test that needs other settings builds a config of its own. */
export abstract class AppConfig {
  readonly nodeEnv: string;
  readonly port: number;
  readonly logLevel: 'error' | 'warn' | 'info' | 'debug';
  readonly role: BatchRole;
  readonly db: Readonly<{
    host: string;
    port: number;
    name: string;
    username: string;
    password: string;
    poolSize: number;
    /**
     * Whether `npm start` may run a PostgreSQL of its own when none answers at host and port: in development, and only
     * while no DB_* variable is set (one that is set names the server to use, and its absence is an error; an empty
     * one is unset, as everywhere).
     */
    embedded: boolean;
  }>;
  /** `warmUpRequests`: how many refused requests an RPC-serving process answers itself before it says it is ready. */
  readonly rmq: Readonly<{
    url: string;
    queue: string;
    eventsExchange: string;
    prefetch: number;
    warmUpRequests: number;
  }>;
  readonly redisUrl: string;
  readonly apiKeySecret: string;
  readonly adminApiKey: string | undefined;
  readonly targetSchemas: readonly string[];
  /** The schemas `copy` jobs may read (BATCH_SOURCE_SCHEMAS, by default the target schemas). */
  readonly sourceSchemas: readonly string[];
  readonly poll: Readonly<{
    intervalMs: number;
    limit: number;
    maxLimit: number;
    statementMaxRows: number;
    skipLimit: number | null;
    maxChunkBytes: number;
    maxStatementBytes: number;
    retryLimit: number;
    lockTimeoutMs: number;
    /** How long a worker holds a chunk for another database between its commits before any worker may finish it. */
    leaseMs: number;
  }>;
  readonly outboxIntervalMs: number;
  readonly jobs: Readonly<{
    leaseMs: number;
    pollIntervalMs: number;
    concurrency: number;
    /** Executions of one client run at once, across all workers (its others wait their turn). */
    maxRunningPerClient: number;
    maxSchedulesPerClient: number;
  }>;
  /**
   * Job alerts' webhooks (docs/operating.md#job-alerts): how long one call may take, how many calls a delivery gets,
   * and the wait after the first failed one (doubled after each, up to an hour).
   */
  readonly alerts: Readonly<{ timeoutMs: number; maxAttempts: number; retryMs: number }>;
  readonly retention: Readonly<{ hours: number; intervalMs: number }>;
  readonly limits: Readonly<{
    maxMessageBytes: number;
    maxBytesInFlight: number;
    maxImportBytes: number;
    maxImportRecordBytes: number;
    defaultRateLimitPerSecond: number | null;
    notBeforeMaxDays: number;
  }>;
  /**
   * Uploads (POST /api/imports): at once per process (each on a connection of their own), at once per client in a
   * process, how long a body may send nothing, and how many bytes a client's stored data sets may take.
   */
  readonly uploads: Readonly<{
    maxUploads: number;
    maxClientUploads: number;
    idleTimeoutMs: number;
    clientQuotaBytes: number;
  }>;
  readonly catalogTtlMs: number;
  /** The databases other than its own that the service reads and writes (BATCH_DATABASES), by name. */
  readonly databases: readonly NamedDatabase[];
}

export { ConfigError };

type Env = Record<string, string | undefined>;

const DEV_SECRET = 'batch-service-development-secret-change-me';

const STRONG = 'at least 32 characters, at least 10 of them different (e.g. `openssl rand -hex 32`)';

/** Long enough, and not a repetition of a few characters. */
function isStrong(secret: string): boolean {
  return secret.length >= 32 && new Set(secret).size >= 10;
}

function text(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value === '' ? fallback : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const value = text(env, name, fallback);
  if (!allowed.includes(value as T))
    throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}

function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const value = text(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `must be a URL, got "${value}"`);
  }
  if (!protocols.includes(parsed.protocol))
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got "${value}"`);
  return value;
}

function name(env: Env, variable: string, fallback: string): string {
  const value = text(env, variable, fallback);
  if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(value))
    throw new ConfigError(variable, `must be 1..200 letters, digits or _.:-, got "${value}"`);
  return value;
}

/**
 * The configuration read from `env` once, every variable checked (a ConfigError naming the first that is wrong). One
 * function over 60 lines on purpose: a line per setting, in the shape of AppConfig, is the table a reader looks for.
 */
export function loadConfig(env: Env = process.env): AppConfig {
  const nodeEnv = text(env, 'NODE_ENV', 'development');
  const production = nodeEnv === 'production';
  const apiKeySecret = text(env, 'API_KEY_ENCRYPTION_SECRET', production ? '' : DEV_SECRET);
  if (production && (!isStrong(apiKeySecret) || apiKeySecret === DEV_SECRET)) {
    throw new ConfigError('API_KEY_ENCRYPTION_SECRET', `must be a strong secret when NODE_ENV=production: ${STRONG}`);
  }
  const adminApiKey = env.BATCH_ADMIN_API_KEY || undefined;
  if (adminApiKey !== undefined && production && !isStrong(adminApiKey)) {
    throw new ConfigError('BATCH_ADMIN_API_KEY', `is too weak for NODE_ENV=production: ${STRONG}`);
  }
  if (adminApiKey !== undefined && adminApiKey.length < 8)
    throw new ConfigError('BATCH_ADMIN_API_KEY', 'must be at least 8 characters');
  const targetSchemas = schemas(env, 'BATCH_TARGET_SCHEMAS', 'public');
  const sourceSchemas = schemas(env, 'BATCH_SOURCE_SCHEMAS', targetSchemas.join(','));
  const chunkLimit = integer(env, 'BATCH_PROCESS_OPERATION_LIMIT', 1000, 1, 50_000);
  const maxUploads = integer(env, 'BATCH_IMPORT_MAX_UPLOADS', 4, 1, 100);
  const mainDb = {
    host: text(env, 'DB_HOST', '127.0.0.1'),
    port: integer(env, 'DB_PORT', 5432, 1, 65535),
    name: name(env, 'DB_NAME', 'batch_service'),
  };

  return deepFreeze({
    nodeEnv,
    port: integer(env, 'PORT', 3000, 0, 65535),
    logLevel: oneOf(env, 'LOG_LEVEL', 'info', ['error', 'warn', 'info', 'debug'] as const),
    role: oneOf(env, 'BATCH_ROLE', 'all', ['all', 'api', 'worker'] as const),
    db: {
      host: mainDb.host,
      port: mainDb.port,
      name: mainDb.name,
      username: text(env, 'DB_USERNAME', 'postgres'),
      password: env.DB_PASSWORD ?? '',
      poolSize: integer(env, 'DB_POOL_SIZE', 10, 2, 200),
      embedded: !production && !Object.entries(env).some(([variable, value]) => variable.startsWith('DB_') && value),
    },
    rmq: {
      url: url(env, 'BATCH_SERVICE_RMQ_URL', 'amqp://guest:guest@127.0.0.1:5672', ['amqp:', 'amqps:']),
      queue: name(env, 'BATCH_SERVICE_RMQ_QUEUE', 'batch_service'),
      eventsExchange: name(env, 'BATCH_SERVICE_EVENTS_EXCHANGE', 'batch_service.events'),
      prefetch: integer(env, 'BATCH_RMQ_PREFETCH', 200, 1, 10000),
      warmUpRequests: integer(env, 'BATCH_WARMUP_REQUESTS', 2000, 0, 100_000),
    },
    redisUrl: url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    apiKeySecret,
    adminApiKey,
    targetSchemas,
    sourceSchemas,
    poll: {
      intervalMs: integer(env, 'BATCH_PROCESS_OPERATION_INTERVAL', 100, 1, 3_600_000),
      limit: chunkLimit,
      maxLimit: Math.max(chunkLimit, integer(env, 'BATCH_CHUNK_MAX_OPERATIONS', 20_000, 1, 100_000)),
      statementMaxRows: integer(env, 'BATCH_STATEMENT_MAX_ROWS', 5000, 1, 50_000),
      skipLimit: env.BATCH_SKIP_LIMIT ? integer(env, 'BATCH_SKIP_LIMIT', 0, 0, 1_000_000) : null,
      maxChunkBytes: integer(env, 'BATCH_CHUNK_MAX_BYTES', 64 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
      maxStatementBytes: integer(env, 'BATCH_STATEMENT_MAX_BYTES', 16 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
      retryLimit: integer(env, 'BATCH_CHUNK_RETRY_LIMIT', 3, 0, 100),
      lockTimeoutMs: integer(env, 'BATCH_LOCK_TIMEOUT', 1000, 0, 3_600_000),
      leaseMs: integer(env, 'BATCH_CHUNK_LEASE_MS', 60_000, 1000, 3_600_000),
    },
    outboxIntervalMs: integer(env, 'BATCH_OUTBOX_INTERVAL', 100, 1, 3_600_000),
    jobs: {
      leaseMs: integer(env, 'BATCH_JOB_LEASE_MS', 30_000, 1000, 3_600_000),
      pollIntervalMs: integer(env, 'BATCH_JOB_POLL_INTERVAL', 1000, 10, 60_000),
      concurrency: integer(env, 'BATCH_JOB_CONCURRENCY', 2, 1, 64),
      maxRunningPerClient: integer(env, 'BATCH_JOB_MAX_RUNNING_PER_CLIENT', 4, 1, 10_000),
      maxSchedulesPerClient: integer(env, 'BATCH_JOB_MAX_SCHEDULES_PER_CLIENT', 100, 0, 1_000_000),
    },
    limits: {
      maxMessageBytes: integer(env, 'BATCH_MAX_MESSAGE_BYTES', 5 * 1024 * 1024, 1024, 512 * 1024 * 1024),
      maxBytesInFlight: integer(env, 'BATCH_MAX_BYTES_IN_FLIGHT', 32 * 1024 * 1024, 1024, 16 * 1024 * 1024 * 1024),
      maxImportBytes: integer(env, 'BATCH_IMPORT_MAX_BYTES', 4 * 1024 ** 3, 1, 1024 ** 4),
      maxImportRecordBytes: integer(env, 'BATCH_IMPORT_MAX_RECORD_BYTES', 16 * 1024 ** 2, 1024, 256 * 1024 ** 2),
      defaultRateLimitPerSecond: env.BATCH_DEFAULT_RATE_LIMIT
        ? integer(env, 'BATCH_DEFAULT_RATE_LIMIT', 0, 1, 10_000_000)
        : null,
      notBeforeMaxDays: integer(env, 'BATCH_NOT_BEFORE_MAX_DAYS', 365, 1, 36_500),
    },
    uploads: {
      maxUploads,
      maxClientUploads: Math.min(maxUploads, integer(env, 'BATCH_IMPORT_MAX_CLIENT_UPLOADS', 2, 1, 100)),
      idleTimeoutMs: integer(env, 'BATCH_IMPORT_IDLE_TIMEOUT_MS', 30_000, 100, 300_000),
      clientQuotaBytes: integer(env, 'BATCH_IMPORT_CLIENT_QUOTA_BYTES', 8 * 1024 ** 3, 1, 1024 ** 5),
    },
    alerts: {
      timeoutMs: integer(env, 'BATCH_ALERT_TIMEOUT_MS', 10_000, 100, 120_000),
      maxAttempts: integer(env, 'BATCH_ALERT_MAX_ATTEMPTS', 10, 1, 100),
      retryMs: integer(env, 'BATCH_ALERT_RETRY_MS', 5000, 10, 3_600_000),
    },
    retention: {
      hours: integer(env, 'BATCH_RETENTION_HOURS', 168, 1, 87_600),
      intervalMs: integer(env, 'BATCH_RETENTION_INTERVAL', 60_000, 100, 86_400_000),
    },
    catalogTtlMs: integer(env, 'BATCH_CATALOG_TTL', 5000, 0, 3_600_000),
    databases: parseDatabases(env.BATCH_DATABASES, mainDb),
  });
}

/** A comma-separated list of schemas a table may be in: valid names, never the service's own or a system schema. */
function schemas(env: Env, variable: string, fallback: string): string[] {
  const names = text(env, variable, fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const schema of names) {
    if (!/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(schema))
      throw new ConfigError(variable, `has an invalid schema name "${schema}"`);
    if (schema === 'batch') throw new ConfigError(variable, 'must not include the service\'s own schema "batch"');
    if (/^(pg_|information_schema$)/i.test(schema))
      throw new ConfigError(variable, `must not include the system schema "${schema}"`);
  }
  if (names.length === 0) throw new ConfigError(variable, 'must name at least one schema');
  return names;
}

function deepFreeze<T extends object>(value: T): T {
  for (const field of Object.values(value))
    if (field !== null && typeof field === 'object') deepFreeze(field as object);
  return Object.freeze(value);
}
