import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchServiceClient, SettledEventsConsumer } from '../src/client';
import { SETTLED_ROUTING_KEY_PREFIX } from '../src/interfaces/operation.interfaces';
import { RMQ_URL, TestDb } from '../test/support/harness';
import { connect } from 'amqplib';
import { deleteBrokerObjects, freePort, http, serviceEnv, settledQueue } from '../test/support/service-process';
import { dropDatabase } from '../test/support/test-database';

const ROOT = join(__dirname, '..', '..');

/** A process's resident memory (VmRSS), in MB. */
export function residentMegabytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** A service process started the way the README starts it: `npm start`, with its role and names in the environment. */
export interface NpmService {
  url: string;
  /** The service's own process (node dist/src/main.js), for its CPU time. */
  pid(): number;
  /** It ended on its own (npm start exited). */
  exited(): boolean;
  stop(): Promise<void>;
}

/**
 * `npm start` (which builds only when dist/ is stale, then runs node with the README's flags) in its own process group,
 * so that stopping it stops npm and the service; resolves once /health answers that it is ready.
 */
export async function npmStart(env: Record<string, string>): Promise<NpmService> {
  const port = String(await freePort());
  const [command, ...args] = startCommand();
  const child: ChildProcess = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: port },
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true,
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = once(child, 'exit');
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`npm start exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('the service did not start within 120 s');
    if (
      await fetch(`${url}/health`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const service = serviceProcessOf(child.pid!);
  return {
    url,
    pid: () => service,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop: async () => {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
      await exited;
    },
  };
}

/**
 * `npm start`; or, with `SERVICE_CPU_PROF_DIR=/tmp/prof npm run bench`, npm start's own command with V8's CPU profiler
 * added (it cannot be given through NODE_OPTIONS), writing a profile of each service process there; built first when
 * stale, as npm start's prestart does.
 */
function startCommand(): string[] {
  const dir = process.env.SERVICE_CPU_PROF_DIR;
  if (!dir) return ['npm', 'start', '--silent'];
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-if-stale.js')], { stdio: 'inherit' }); // as prestart
  const flags = readFileSync(join(ROOT, 'scripts', 'node-flags'), 'utf8')
    .trim()
    .split(/\s+/);
  return [
    'env',
    `MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? 2}`,
    process.execPath,
    '--cpu-prof',
    `--cpu-prof-dir=${dir}`,
    ...flags,
    'dist/src/main.js',
  ];
}

/** The node process that npm started (npm → sh → node), found through /proc. */
function serviceProcessOf(npm: number): number {
  const children = (pid: number) =>
    readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((entry) => {
        try {
          return readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1].split(' ')[1] === String(pid);
        } catch {
          return false;
        }
      })
      .map(Number);
  let level = [npm]; // npm → sh → node, or node itself when profiled
  for (let depth = 0; depth < 3; depth++) {
    for (const pid of level) {
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (command[0].endsWith('node') && command.includes('dist/src/main.js')) return pid;
    }
    level = level.flatMap(children);
  }
  throw new Error('the service process was not found under npm start');
}

type Role = 'all' | 'api' | 'worker';

/**
 * A service started with `npm start` on a database, queue and exchange of its own, on the README's defaults: one
 * process per role given (`all`, as `npm start` alone runs it; or `api` and `worker` apart), and a client `bench`
 * allowed every target and source.
 */
export class BenchService {
  readonly env: Record<string, string>;
  readonly db: TestDb;
  readonly processes = new Map<Role, NpmService>();
  apiKey = '';

  /** `settings`: more of the service's environment than the README's defaults. */
  constructor(settings: Record<string, string> = {}) {
    this.env = serviceEnv({ LOG_LEVEL: 'error', BATCH_PROCESS_OPERATION_INTERVAL: '100', ...settings });
    this.db = new TestDb(this.env.DB_NAME);
  }

  /** The process of a role (`api` and `worker` are the same process when it runs as `all`). */
  process(role: Role): NpmService {
    const started = this.processes.get(role) ?? this.processes.get('all');
    if (!started) throw new Error(`no ${role} process was started`);
    return started;
  }

  /** The service's processes by role, for a CpuMeter. */
  pids(): Record<string, number> {
    return Object.fromEntries([...this.processes].map(([role, started]) => [`service (${role})`, started.pid()]));
  }

  async start(roles: Role[]): Promise<void> {
    for (const role of roles) await this.startRole(role);
    const created = await http<{ apiKey: string }>(
      { url: this.process('api').url, adminKey: this.env.BATCH_ADMIN_API_KEY } as never,
      'POST',
      '/api/clients',
      this.env.BATCH_ADMIN_API_KEY,
      { name: 'bench', targets: ['*'], sources: ['*'] },
    );
    this.apiKey = created.body.apiKey;
  }

  /** Starts one more process of a role (`npm start`), once /health answers that it is ready. */
  async startRole(role: Role): Promise<void> {
    this.processes.set(role, await npmStart({ ...this.env, BATCH_ROLE: role }));
  }

  /** Stops a role's process (SIGTERM, as a deploy would). */
  async stopRole(role: Role): Promise<void> {
    await this.processes.get(role)?.stop();
    this.processes.delete(role);
  }

  rpc(): BatchServiceClient {
    return new BatchServiceClient({
      url: RMQ_URL,
      queue: this.env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey: this.apiKey,
      timeoutMs: 120_000,
    });
  }

  /**
   * Counts the operations notified to the bench client (and hands each id to `each`), from a queue of its own or from
   * `queue`; `settled()` resolves once `count` have been.
   */
  async notifications(
    each: (id: string) => void = () => undefined,
    queue?: string,
  ): Promise<{ settled(count: number): Promise<number>; stop(): Promise<void> }> {
    let seen = 0;
    let waiter: { count: number; resolve: (at: number) => void } | null = null;
    const consumer = new SettledEventsConsumer({
      url: RMQ_URL,
      exchange: this.env.BATCH_SERVICE_EVENTS_EXCHANGE,
      client: 'bench',
      queue,
      prefetch: 200,
    });
    await consumer.start((event) => {
      for (const operation of event.operations) each(operation.id);
      seen += event.operations.length;
      if (waiter && seen >= waiter.count) waiter.resolve(Date.now());
    });
    return {
      settled: (count) =>
        seen >= count ? Promise.resolve(Date.now()) : new Promise((resolve) => (waiter = { count, resolve })),
      stop: () => consumer.stop(),
    };
  }

  /**
   * Holds the notifications to the bench client in a queue of their own, consuming none: callers consume elsewhere,
   * and a consumer on this machine would take a large share of the two cores the drain is timed on. `receive(count)`
   * then consumes them, resolving once `count` operations have been notified (the queue is deleted at stop()).
   */
  async heldNotifications(): Promise<{ receive(count: number): Promise<void> }> {
    const queue = settledQueue(this.env, 'bench');
    const exchange = this.env.BATCH_SERVICE_EVENTS_EXCHANGE;
    const broker = await connect(RMQ_URL);
    try {
      const channel = await broker.createChannel();
      await channel.assertExchange(exchange, 'topic', { durable: true });
      await channel.assertQueue(queue, { durable: true });
      await channel.bindQueue(queue, exchange, `${SETTLED_ROUTING_KEY_PREFIX}bench`);
    } finally {
      await broker.close();
    }
    return {
      receive: async (count) => {
        const received = await this.notifications(undefined, queue);
        await received.settled(count);
        await received.stop();
      },
    };
  }

  /**
   * Stops the processes, then deletes what the run declared on the broker (once a process has started: what names it
   * is read from the database the service made) and its database.
   */
  async stop(): Promise<void> {
    const started = [...this.processes.values()];
    for (const role of started.reverse()) await role.stop();
    await this.db.close();
    if (started.length > 0) await deleteBrokerObjects(this.env);
    await dropDatabase(this.env.DB_NAME);
  }
}
