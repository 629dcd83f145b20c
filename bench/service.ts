import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../test/support/service-process';

const ROOT = join(__dirname, '..', '..');

/** A service process started the way the README starts it: `npm start`, with its role and names in the environment. */
export interface NpmService {
  url: string;
  /** The service's own process (node dist/src/main.js), for its CPU time. */
  pid(): number;
  stop(): Promise<void>;
}

/**
 * `npm start` (which builds only when dist/ is stale, then runs node with the README's flags) in its own process group,
 * so that stopping it stops npm and the service; resolves once /health/live answers.
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
      await fetch(`${url}/health/live`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const service = await serviceProcessOf(child.pid!);
  return {
    url,
    pid: () => service,
    stop: async () => {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
      await exited;
    },
  };
}

/**
 * `npm start`; or, with `SERVICE_CPU_PROF_DIR=/tmp/prof npm run bench`, npm start's own command with V8's CPU profiler
 * added (it cannot be given through NODE_OPTIONS), writing a profile of each service process there.
 */
function startCommand(): string[] {
  const dir = process.env.SERVICE_CPU_PROF_DIR;
  if (!dir) return ['npm', 'start', '--silent'];
  const [, ...flags] = (
    JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }
  ).scripts.start.split(' ');
  return [process.execPath, '--cpu-prof', `--cpu-prof-dir=${dir}`, ...flags];
}

/** The node process that npm started (npm → sh → node), found through /proc. */
async function serviceProcessOf(npm: number): Promise<number> {
  const { readdirSync } = await import('node:fs');
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
