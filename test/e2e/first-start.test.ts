import assert from 'node:assert/strict';
import { ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { eventually } from '../support/service-process';
import { answersNow } from '../support/shared-services';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..', '..');
/** The ports of a machine with Node alone: none answers. PostgreSQL, RabbitMQ, Redis, and the README's HTTP port. */
const PORTS = [5432, 5672, 6379, 3000];
const ADMIN_KEY = 'local-admin-key';
const URL = 'http://127.0.0.1:3000';
const INSIDE = process.env.BATCH_TEST_FIRST_START === 'inside';

/** This environment without the test runner's own variables: the run inside reports as a program run alone. */
function insideEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('NODE_TEST')));
}

const portsClosed = () => PORTS.every((port) => !answersNow('127.0.0.1', port));
const canUnshare = () => process.getuid?.() === 0 && spawnSync('unshare', ['-n', 'true']).status === 0;

/**
 * The README's start on a machine with Node alone: `npm start` in a copy of the checkout (its node_modules those of
 * this one, as `npm install` left them), with nothing answering on any service port. Where the services run here,
 * the test runs again inside a network namespace of its own (`unshare -n`, as root), where nothing listens.
 */
if (INSIDE || portsClosed()) describe('a first start on a machine with Node alone (npm start)', firstStart);
else if (canUnshare())
  describe('a first start on a machine with Node alone (npm start, in a network namespace)', () => {
    it('passes with every service port closed (unshare -n)', async () => {
      const result = spawnSync(
        'unshare',
        ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$1"', process.execPath, __filename],
        { env: { ...insideEnv(), BATCH_TEST_FIRST_START: 'inside' }, encoding: 'utf8', timeout: 280_000 },
      );
      assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    });
  });
else
  describe('a first start on a machine with Node alone (npm start)', () => {
    it('runs with nothing answering on 127.0.0.1', {
      skip: `needs ports ${PORTS.join(', ')} closed: a machine without the services, or root (unshare -n)`,
    });
  });

function firstStart(): void {
  const checkout = mkdtempSync(join(tmpdir(), 'batch-first-start-'));
  const env = {
    PATH: [dirname(process.execPath), process.env.PATH].join(delimiter),
    HOME: process.env.HOME ?? checkout,
    npm_config_update_notifier: 'false',
    BATCH_ADMIN_API_KEY: ADMIN_KEY,
  };
  let service: ChildProcess | null = null;
  let output = '';
  let apiKey = '';

  before(() => {
    assert.ok(portsClosed(), `nothing may answer on ports ${PORTS.join(', ')}`);
    chmodSync(checkout, 0o755); // a checkout others can reach, as one in a home folder usually is
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'scripts'])
      cpSync(join(ROOT, entry), join(checkout, entry), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'));
  });

  after(() => {
    if (service?.exitCode === null) process.kill(-service.pid!, 'SIGKILL');
    rmSync(checkout, { recursive: true, force: true });
  });

  /** `npm start` in its own process group (a terminal's), resolved once /health answers 200 within `withinMs`. */
  async function npmStart(withinMs: number): Promise<void> {
    output = '';
    service = spawn('npm', ['start'], { cwd: checkout, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    service.stdout!.on('data', (chunk) => (output += chunk));
    service.stderr!.on('data', (chunk) => (output += chunk));
    const started = service;
    await eventually(
      async () => {
        if (started.exitCode !== null) throw new Error(`npm start exited with ${started.exitCode}:\n${output}`);
        const status = await fetch(`${URL}/health`).then(
          (response) => response.status,
          () => 0,
        );
        return status === 200 ? true : undefined;
      },
      withinMs,
      `/health to answer 200 within ${withinMs} ms:\n${output}`,
    );
  }

  /** The processes still running from the checkout (the service, its PostgreSQL and the shell that guards it). */
  function processesOfCheckout(): string[] {
    const found: string[] = [];
    for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
      try {
        const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
        if (command.includes(checkout) || readlinkSync(`/proc/${pid}/cwd`).startsWith(checkout))
          found.push(`${pid}: ${command}`);
      } catch {
        // ended meanwhile
      }
    }
    return found;
  }

  /** Once npm has exited: the service shut down, and within seconds no process of the checkout is left. */
  async function stopped(signal: string): Promise<void> {
    if (service!.exitCode === null && service!.signalCode === null) await once(service!, 'exit');
    await eventually(async () => (processesOfCheckout().length === 0 ? true : undefined), 10_000, 'no process left');
    assert.match(output, new RegExp(`${signal}: shutting down`), output);
    assert.doesNotMatch(output, /shutdown took longer/, output);
  }

  const sql = async (statement: string) =>
    (await run('npm', ['run', '--silent', 'sql', '--', statement], { cwd: checkout, env })).stdout;

  async function rest<T>(method: string, path: string, key: string, body?: string, type = 'application/json') {
    const response = await fetch(URL + path, {
      method,
      headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': type }) },
      body,
    });
    return { status: response.status, body: (await response.json()) as T };
  }

  it('is healthy within 60 s of the first npm start (its build and database included), and says why', async () => {
    await npmStart(60_000);
    assert.match(
      output,
      /No PostgreSQL answered on 127\.0\.0\.1:5432: started an embedded one .*\.embedded-postgres\//,
    );
    assert.match(
      output,
      /to use a real server, start one \(docker compose up -d postgres\) or set DB_HOST and DB_PORT/,
    );
    assert.match(output, /No RabbitMQ answers at amqp:\/\/127\.0\.0\.1:5672: .*docker compose up -d rabbitmq/);
    assert.ok(existsSync(join(checkout, '.embedded-postgres', 'data', 'PG_VERSION')), 'the data is in the checkout');
    assert.match(readFileSync(join(ROOT, '.gitignore'), 'utf8'), /^\.embedded-postgres\/$/m, 'and git-ignored');
    const health = await rest<{ details: Record<string, { status: string; optional?: boolean }> }>(
      'GET',
      '/health',
      '',
    );
    assert.equal(health.body.details.database.status, 'up');
    assert.deepEqual([health.body.details.broker.status, health.body.details.broker.optional], ['down', true]);
  });

  it("runs the README's first example: a table, a client, an operation, an import", async () => {
    assert.match(await sql('CREATE TABLE reservations (id int PRIMARY KEY, seat text NOT NULL)'), /^CREATE$/m);
    const client = await rest<{ apiKey: string }>(
      'POST',
      '/api/clients',
      ADMIN_KEY,
      JSON.stringify({ name: 'booking', targets: ['reservations'] }),
    );
    assert.equal(client.status, 201, JSON.stringify(client.body));
    apiKey = client.body.apiKey;
    const operation = await rest<{ id: string; status: string }>(
      'POST',
      '/api/operations',
      apiKey,
      JSON.stringify({ target: 'reservations', type: 'insert', values: { id: 1, seat: '1A' }, idempotencyKey: 'r-1' }),
    );
    assert.deepEqual([operation.status, operation.body.status], [201, 'PENDING']);
    const settled = await eventually(async () => {
      const { body } = await rest<{ status: string; rowsAffected: number }>(
        'GET',
        `/api/operations/${operation.body.id}`,
        apiKey,
      );
      return body.status === 'PENDING' ? undefined : body;
    });
    assert.deepEqual([settled.status, settled.rowsAffected], ['COMPLETED', 1]);

    const uploaded = await rest<{ id: string }>(
      'POST',
      '/api/imports?target=reservations&skipLimit=100',
      apiKey,
      'id,seat\n2,2B\n3,3C\n',
      'text/csv',
    );
    assert.equal(uploaded.status, 202, JSON.stringify(uploaded.body));
    await eventually(async () => {
      const { body } = await rest<{ status: string }>('GET', `/api/jobs/executions/${uploaded.body.id}`, apiKey);
      return body.status === 'COMPLETED' ? true : undefined;
    });
    writeFileSync(join(checkout, 'more.csv'), 'id,seat\n4,4D\n');
    await run(
      process.execPath,
      ['dist/src/client/cli.js', 'import', 'more.csv', '--target', 'reservations', '--key', apiKey],
      {
        cwd: checkout,
        env,
      },
    );
    const rows = await sql('SELECT id, seat FROM reservations ORDER BY id');
    for (const seat of ['1A', '2B', '3C', '4D']) assert.match(rows, new RegExp(`'${seat}'`), rows);
  });

  it('stops with its PostgreSQL on Ctrl-C (SIGINT to the terminal’s process group), leaving no process', async () => {
    process.kill(-service!.pid!, 'SIGINT');
    await stopped('SIGINT');
  });

  it('starts again within 15 s with its data kept, and stops with its PostgreSQL on SIGTERM', async () => {
    await npmStart(15_000);
    assert.match(await sql('SELECT count(*)::int AS n FROM reservations'), /│ 4 /);
    const clients = await rest<{ name: string }[]>('GET', '/api/clients', ADMIN_KEY);
    assert.ok(clients.body.some((client) => client.name === 'booking'));
    const node = processesOfCheckout().find((line) => /^\d+: \S*node .*dist\/src\/main\.js/.test(line));
    assert.ok(node, `the service process among ${processesOfCheckout().join('\n')}`);
    process.kill(Number(node.split(':')[0]), 'SIGTERM');
    await stopped('SIGTERM');
  });
}
