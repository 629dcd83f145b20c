import { ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './service-process';

/**
 * Private instances of PostgreSQL, RabbitMQ and Redis for the fault tests: each started on ports of its own, in a
 * temporary folder, from the binaries of the machine, and broken, restarted and removed by the test alone. The
 * services a user runs are never touched. Where a binary is missing, `missing` says what to install, and the test is
 * skipped with that line.
 */
const run = promisify(execFile);

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every private instance a test started: stopped when the test process exits, however it exits. */
const started = new Set<() => void>();
process.on('exit', () => started.forEach((kill) => kill()));

/**
 * The first executable of this name in `first` folders, on the PATH, or in `then` folders (globs of one `*` segment),
 * or null.
 */
function findBinary(name: string, then: string[] = [], first: string[] = []): string | null {
  const candidates = [...first.flatMap(expand), ...(process.env.PATH ?? '').split(delimiter), ...then.flatMap(expand)];
  for (const folder of candidates) {
    const path = join(folder, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return null;
}

/** `/usr/lib/postgresql/*\/bin` as the folders it names, newest version last sorted first. */
function expand(pattern: string): string[] {
  const star = pattern.indexOf('*');
  if (star < 0) return [pattern];
  const parent = pattern.slice(0, pattern.lastIndexOf('/', star));
  const rest = pattern.slice(pattern.indexOf('/', star));
  if (!existsSync(parent)) return [];
  return readdirSync(parent)
    .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }))
    .map((entry) => `${parent}/${entry}${rest}`);
}

/** Resolves once something accepts TCP connections on the port, or fails after `timeoutMs`. */
async function untilListening(port: number, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await accepts(port))) {
    if (Date.now() > deadline) throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** A child process that is killed with the test process, and awaited when stopped. */
function supervised(child: ChildProcess): { stop(signal?: NodeJS.Signals): Promise<void> } {
  const kill = () => child.kill('SIGKILL');
  started.add(kill);
  const exited = child.exitCode === null ? once(child, 'exit') : Promise.resolve();
  return {
    stop: async (signal = 'SIGTERM') => {
      started.delete(kill);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

// ---- PostgreSQL ----------------------------------------------------------------------------------------------

const PG_FOLDERS = ['/usr/lib/postgresql/*/bin', '/usr/local/pgsql/bin', '/opt/homebrew/bin', '/usr/pgsql-*/bin'];
const initdb = findBinary('initdb', PG_FOLDERS);
const pgCtl = findBinary('pg_ctl', PG_FOLDERS);
/** initdb and PostgreSQL refuse to run as root: as root, they run as the user postgres. */
const asPostgres = userInfo().uid === 0 ? ['runuser', '-u', 'postgres', '--'] : [];

export const POSTGRES_MISSING =
  initdb && pgCtl
    ? asPostgres.length > 0 && !findBinary('runuser')
      ? 'needs runuser to start PostgreSQL as the user postgres (util-linux)'
      : null
    : "needs PostgreSQL's server binaries (initdb, pg_ctl) on the PATH: apt install postgresql, brew install postgresql";

export interface PrivatePostgres {
  /** What points a service at it (DB_HOST, DB_PORT, DB_USERNAME, DB_PASSWORD). */
  env: Record<string, string>;
  /** Fast shutdown: every connection is terminated. */
  stop(): Promise<void>;
  /** Started again on the same port and data (nothing when it runs). */
  start(): Promise<void>;
  /**
   * Every process of the server stopped where it is (SIGSTOP), its connections left open: it accepts connections and
   * takes statements, and answers nothing, as a server on a frozen host or behind a lost route.
   */
  freeze(): Promise<void>;
  /** Answering again (SIGCONT) from where it stopped. */
  thaw(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startPostgres(): Promise<PrivatePostgres> {
  if (POSTGRES_MISSING) throw new Error(POSTGRES_MISSING);
  const folder = mkdtempSync(join(tmpdir(), 'batch-pg-'));
  const data = join(folder, 'data');
  if (asPostgres.length > 0) await run('chown', ['postgres', folder]);
  const pg = (binary: string, args: string[]) => {
    const [command, ...prefix] = [...asPostgres, binary];
    return run(command, [...prefix, ...args], { timeout: 60_000 });
  };
  await pg(initdb!, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const options = `-p ${port} -k ${folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;
  const start = () => pg(pgCtl!, ['-D', data, '-o', options, '-l', join(folder, 'log'), '-w', 'start']);
  const stop = (mode: string) => pg(pgCtl!, ['-D', data, '-m', mode, '-w', 'stop']);
  await start();
  let running = true;
  // the postmaster's pid is the first line of its pid file; its children are the backends and helpers (stopped after
  // it, so that it starts none meanwhile)
  const signal = (name: 'STOP' | 'CONT') => {
    const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmaster, `SIG${name}`);
    spawnSync('pkill', [`-${name}`, '-P', String(postmaster)]);
  };
  const thaw = () => {
    try {
      signal('CONT');
    } catch {
      // not running
    }
  };
  const kill = () => {
    thaw();
    void stop('immediate').catch(() => undefined);
  };
  started.add(kill);
  return {
    env: { DB_HOST: '127.0.0.1', DB_PORT: String(port), DB_USERNAME: 'postgres', DB_PASSWORD: '' },
    stop: async () => {
      running = false;
      await stop('fast');
    },
    start: async () => {
      if (!running) await start();
      running = true;
    },
    freeze: async () => signal('STOP'),
    thaw: async () => signal('CONT'),
    destroy: async () => {
      started.delete(kill);
      thaw();
      await stop('immediate').catch(() => undefined);
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

// ---- Redis ---------------------------------------------------------------------------------------------------

const redisServer = findBinary('redis-server', ['/usr/local/bin', '/opt/homebrew/bin']);

export const REDIS_MISSING = redisServer
  ? null
  : 'needs redis-server on the PATH: apt install redis-server, brew install redis';

export interface PrivateRedis {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startRedis(): Promise<PrivateRedis> {
  if (REDIS_MISSING) throw new Error(REDIS_MISSING);
  const port = await freePort();
  let server: ReturnType<typeof supervised> | null = null;
  const start = async () => {
    const child = spawn(
      redisServer!,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    server = supervised(child);
    await untilListening(port, 'Redis');
  };
  const stop = async () => {
    await server?.stop();
    server = null;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, start, stop, destroy: stop };
}

// ---- RabbitMQ ------------------------------------------------------------------------------------------------

const rabbitServer = findBinary(
  'rabbitmq-server',
  ['/opt/homebrew/sbin', '/usr/local/sbin'],
  // Debian's and Ubuntu's script itself, before the wrapper on the PATH that becomes the user rabbitmq (and drops
  // the environment that makes the node private)
  ['/usr/lib/rabbitmq/bin'],
);

export const RABBITMQ_MISSING = rabbitServer
  ? null
  : 'needs rabbitmq-server on the PATH: apt install rabbitmq-server, brew install rabbitmq';

export interface PrivateRabbitMq {
  url: string;
  /** The node stopped (every connection drops), kept down `downMs`, then started again with its data. */
  restart(downMs: number): Promise<void>;
  destroy(): Promise<void>;
}

export async function startRabbitMq(): Promise<PrivateRabbitMq> {
  if (RABBITMQ_MISSING) throw new Error(RABBITMQ_MISSING);
  const folder = mkdtempSync(join(tmpdir(), 'batch-rabbitmq-'));
  const [port, distributionPort] = [await freePort(), await freePort()];
  writeFileSync(join(folder, 'enabled_plugins'), '[].'); // no management plugin: it would take port 15672
  writeFileSync(join(folder, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${port}\nloopback_users = none\n`);
  writeFileSync(join(folder, 'rabbitmq-env.conf'), ''); // not the machine's
  for (const sub of ['mnesia', 'log']) mkdirSync(join(folder, sub));
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: folder, // its own Erlang cookie
    RABBITMQ_NODENAME: `batch_test_${port}@localhost`,
    RABBITMQ_DIST_PORT: String(distributionPort),
    RABBITMQ_CONF_ENV_FILE: join(folder, 'rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: join(folder, 'rabbitmq.conf'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(folder, 'enabled_plugins'),
    RABBITMQ_MNESIA_BASE: join(folder, 'mnesia'),
    RABBITMQ_LOG_BASE: join(folder, 'log'),
  };
  let node: ReturnType<typeof supervised> | null = null;
  const start = async () => {
    // its output to a file: with none at all (stdio ignored), the server script ends at once
    const output = openSync(join(folder, 'output.log'), 'a');
    node = supervised(spawn(rabbitServer!, [], { cwd: folder, env, stdio: ['ignore', output, output] }));
    closeSync(output);
    await untilListening(port, 'RabbitMQ', 120_000);
  };
  const stop = async () => {
    await node?.stop();
    node = null;
  };
  await start();
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    restart: async (downMs) => {
      await stop();
      await sleep(downMs);
      await start();
    },
    destroy: async () => {
      await stop();
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
