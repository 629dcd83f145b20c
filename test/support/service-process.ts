import { connect } from 'amqplib';
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { Client } from 'pg';
import { deadLetterQueue } from '../../src/controllers/rpc-server';
import { dropDatabase, uniqueName } from './test-database';
import { dbClientConfig, RMQ_URL, sharedServicesEnv } from './shared-services';

export { RMQ_URL };

/** The service as the tests compiled it (build/src/main.js) started as a user would, on its own database, queue and exchange. */
export interface ServiceProcess {
  url: string;
  env: Record<string, string>;
  adminKey: string;
  process: ChildProcess;
  logs(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** Stops the process, deletes its queues and exchange from the broker, and drops its database. */
  destroy(): Promise<void>;
}

export const MAIN = join(__dirname, '..', '..', 'src', 'main.js');
/** The Node flags `npm start` and the Dockerfile start the service with (scripts/node-flags, in the repository). */
const NODE_FLAGS = readFileSync(join(__dirname, '..', '..', '..', 'scripts', 'node-flags'), 'utf8')
  .trim()
  .split(/\s+/);

/** `SERVICE_CPU_PROF_DIR=/tmp/prof npm run bench` writes a V8 CPU profile of each service process started there. */
function cpuProfileFlags(): string[] {
  const dir = process.env.SERVICE_CPU_PROF_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/** Every service process a test started: killed when the test process exits, however it exits. */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

export function serviceEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const name = uniqueName('batch_e2e');
  return {
    ...sharedServicesEnv(),
    DB_NAME: name,
    BATCH_SERVICE_RMQ_QUEUE: name,
    BATCH_SERVICE_EVENTS_EXCHANGE: `${name}.events`,
    BATCH_ADMIN_API_KEY: `admin-${name}`,
    BATCH_PROCESS_OPERATION_INTERVAL: '50',
    LOG_LEVEL: 'warn',
    ...overrides,
  };
}

/**
 * serviceEnv for tests that kill job workers: leases of `leaseMs`, the job poller every 100 ms, and no RPC warm-up (a
 * replacement's second of it would share the two cores with a survivor renewing its lease).
 */
export function shortLeaseEnv(leaseMs: string): Record<string, string> {
  return serviceEnv({ BATCH_JOB_LEASE_MS: leaseMs, BATCH_JOB_POLL_INTERVAL: '100', BATCH_WARMUP_REQUESTS: '0' });
}

/**
 * Starts the built service and waits until it answers HTTP. A process killed by a signal before that fails the start,
 * unless `mayBeKilled` (a process with BATCH_TEST_KILL_AT may kill itself at its first chunks, before it listens): then
 * it is returned as it is, killed.
 */
export async function startService(
  env: Record<string, string> = serviceEnv(),
  { mayBeKilled = false } = {},
): Promise<ServiceProcess> {
  const port = env.PORT ?? String(await freePort());
  const fullEnv: Record<string, string> = { ...env, PORT: port };
  const child = spawn(process.execPath, [...NODE_FLAGS, ...cpuProfileFlags(), MAIN], {
    env: { PATH: process.env.PATH ?? '', ...fullEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const url = `http://127.0.0.1:${port}`;
  const exited = once(child, 'exit');
  const service: ServiceProcess = {
    url,
    env: fullEnv,
    adminKey: fullEnv.BATCH_ADMIN_API_KEY,
    process: child,
    logs: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const [code] = await exited;
      return code as number | null;
    },
    destroy: async () => {
      await service.stop();
      await deleteBrokerObjects(fullEnv);
      await dropDatabase(fullEnv.DB_NAME, fullEnv);
    },
  };
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}:\n${output}`);
    if (child.signalCode !== null) {
      if (mayBeKilled) return service;
      throw new Error(`service killed by ${child.signalCode}:\n${output}`);
    }
    try {
      const response = await fetch(`${url}/api/docs-json`);
      if (response.ok) return service;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`service did not start within 30 s:\n${output}`);
}

/** The durable queue of a test caller's settled notifications (see createCaller), named after its service's database. */
export function settledQueue(env: Record<string, string>, clientName: string): string {
  return `${env.DB_NAME}.${clientName}.settled`;
}

/**
 * What a test's service and its callers declared on the broker (all named after its database): the RPC queue and its
 * dead-letter queue, the events exchange, and each client's queue of settled notifications. Durable, so they would
 * outlive the test (or the benchmark run), and are deleted with it.
 */
export async function deleteBrokerObjects(env: Record<string, string>): Promise<void> {
  const db = new Client(dbClientConfig(env.DB_NAME, env));
  await db.connect();
  const clients = await db.query<{ name: string }>('SELECT name FROM batch.clients').finally(() => db.end());
  // a broker that cannot be reached (a test of a service without one) holds nothing of the test
  const broker = await connect(env.BATCH_SERVICE_RMQ_URL ?? RMQ_URL).catch(() => null);
  if (!broker) return;
  try {
    const channel = await broker.createChannel();
    const queues = [
      env.BATCH_SERVICE_RMQ_QUEUE,
      deadLetterQueue(env.BATCH_SERVICE_RMQ_QUEUE),
      ...clients.rows.map(({ name }) => settledQueue(env, name)),
    ];
    for (const queue of queues) await channel.deleteQueue(queue);
    await channel.deleteExchange(env.BATCH_SERVICE_EVENTS_EXCHANGE);
  } finally {
    await broker.close();
  }
}

/** JSON over HTTP with an API key. */
export async function http<T = unknown>(
  service: ServiceProcess,
  method: string,
  path: string,
  apiKey: string | null,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(service.url + path, {
    method,
    headers: {
      ...(apiKey ? { 'x-api-key': apiKey } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A TCP relay from `port` to `host:to`: a server "appears" on that port when it listens; closing it cuts every link. */
export async function relayTo(port: number, host: string, to: number): Promise<Server> {
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const upstream = netConnect(to, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined).on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  relay.on('close', () => sockets.forEach((socket) => socket.destroy()));
  relay.listen(port, '127.0.0.1');
  await once(relay, 'listening');
  return relay;
}
