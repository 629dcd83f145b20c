import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';

/**
 * Faults of the real local services, for the fault tests. Each helper returns once the service is back (or
 * down), so a test stays bounded in time. Test files run one at a time (`--test-concurrency=1`), so a restart
 * never hits another test.
 */
const run = promisify(execFile);

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const succeeds = (command: string, args: string[]) => () =>
  run(command, args, { timeout: 10_000 }).then(
    () => true,
    () => false,
  );

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Stops RabbitMQ's application (every connection drops), keeps it down `downMs`, starts it again. */
export async function restartRabbitMq(downMs: number): Promise<void> {
  await run('rabbitmqctl', ['stop_app'], { timeout: 60_000 });
  await sleep(downMs);
  await run('rabbitmqctl', ['start_app'], { timeout: 60_000 });
  await until(succeeds('rabbitmq-diagnostics', ['-q', 'check_port_connectivity']), 'RabbitMQ');
}

/** Restarts PostgreSQL (fast shutdown: every connection is terminated). */
export async function restartPostgres(): Promise<void> {
  const version = readdirSync('/etc/postgresql')[0];
  await run('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart', '-m', 'fast'], {
    timeout: 60_000,
  });
  await until(succeeds('pg_isready', ['-q', '-h', '127.0.0.1', '-p', '5432']), 'PostgreSQL');
}

export async function stopRedis(): Promise<void> {
  await run('redis-cli', ['-h', '127.0.0.1', 'shutdown', 'nosave']).catch(() => undefined);
  await until(async () => !(await succeeds('redis-cli', ['-h', '127.0.0.1', 'ping'])()), 'Redis to stop');
}

export async function startRedis(): Promise<void> {
  await run('redis-server', ['--daemonize', 'yes', '--bind', '127.0.0.1', '--port', '6379', '--save', '']);
  await until(
    async () =>
      (await run('redis-cli', ['-h', '127.0.0.1', 'ping']).catch(() => ({ stdout: '' }))).stdout.trim() === 'PONG',
    'Redis',
  );
}
