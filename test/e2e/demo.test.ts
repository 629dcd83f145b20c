import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestDb } from '../support/harness';
import { serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/** The compiled `npm run demo` script (build/scripts/demo.js next to build/test/). */
const DEMO = join(__dirname, '..', '..', 'scripts', 'demo.js');

async function runDemo(service: ServiceProcess, args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [DEMO, ...args], {
    env: { PATH: process.env.PATH ?? '', ...service.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = await once(child, 'exit');
  clearTimeout(killer);
  return { code: code as number | null, output };
}

/** `sent …, settled … (… completed, … failed)` from the demo's last summary line. */
function summary(output: string): { sent: number; settled: number; completed: number; failed: number } {
  const match = /Done: sent (\d+), settled (\d+) \((\d+) completed, (\d+) failed\), rejected 0\./.exec(output);
  assert.ok(match, `a summary line in:\n${output}`);
  const [sent, settled, completed, failed] = match.slice(1).map(Number);
  return { sent, settled, completed, failed };
}

/** `npm run demo` against the built service: it sends a stream, counts outcomes from notifications, stops by itself. */
describe('demo: a caller process streaming operations (built service, real database and broker)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;

  before(async () => {
    service = await startService(serviceEnv());
    db = new TestDb(service.env.DB_NAME);
  });

  after(async () => {
    await db?.close();
    await service?.destroy();
  });

  const ofDemo = async () =>
    (
      await db.query<{ total: number; completed: number; failed: number; pending: number }>(
        `SELECT count(*)::int AS total, count(*) FILTER (WHERE o.status = 'COMPLETED')::int AS completed,
                count(*) FILTER (WHERE o.status = 'FAILED')::int AS failed, count(*) FILTER (WHERE o.status = 'PENDING')::int AS pending
           FROM batch.operation_states o JOIN batch.clients c ON c.id = o.client_id WHERE c.name = 'demo'`,
      )
    )[0];

  it('creates its tables and client, streams for the given time, and reports what the database holds', async () => {
    const { code, output } = await runDemo(service, ['--duration', '3', '--rate', '40']);
    assert.equal(code, 0, output);
    assert.match(output, new RegExp(`dashboard: http://localhost:${service.env.PORT}/`));
    assert.ok(
      output.split('\n').filter((l) => /^\[demo\] +\d+ s {2}sent \d+/.test(l)).length >= 2,
      `a line every second:\n${output}`,
    );
    const reported = summary(output);
    assert.ok(reported.sent >= 100, `about 40/s for 3 s plus the initial restock: ${reported.sent}`);
    assert.equal(reported.settled, reported.sent, 'every operation was settled and notified before it stopped');
    assert.ok(reported.failed >= 3, 'some fail on purpose');
    assert.deepEqual(await ofDemo(), {
      total: reported.sent,
      completed: reported.completed,
      failed: reported.failed,
      pending: 0,
    });

    const codes = await db.query<{ code: string }>(
      `SELECT DISTINCT error_code AS code FROM batch.operation_states WHERE status = 'FAILED' ORDER BY 1`,
    );
    assert.deepEqual(
      codes.map((c) => c.code),
      ['23505', '23514'],
      'unique and check violations, nothing unintended',
    );
    const types = await db.query<{ type: string }>(`SELECT DISTINCT type FROM batch.operations ORDER BY 1`);
    assert.deepEqual(
      types.map((t) => t.type),
      ['delete', 'increment', 'insert', 'update', 'upsert'],
    );
    const [{ n: reservations }] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.demo_reservations`,
    );
    const [{ n: skus }] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.demo_inventory`);
    assert.ok(reservations > 0);
    assert.equal(skus, 12);
  });

  it('reuses its client and tables on a second run', async () => {
    const first = await ofDemo();
    const { code, output } = await runDemo(service, ['--duration=1', '--rate=30']);
    assert.equal(code, 0, output);
    const reported = summary(output);
    const now = await ofDemo();
    assert.equal(now.total - first.total, reported.sent);
    assert.equal(now.failed - first.failed, reported.failed);
    assert.equal(now.pending, 0);
    const [{ n: clients }] = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM batch.clients WHERE name = 'demo'`,
    );
    assert.equal(clients, 1);
  });

  it('refuses to start without the admin key, saying what to do', async () => {
    const { BATCH_ADMIN_API_KEY: _, ...withoutKey } = service.env;
    const child = spawn(process.execPath, [DEMO], {
      env: { PATH: process.env.PATH ?? '', ...withoutKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stderr.on('data', (chunk) => (output += chunk));
    const [code] = await once(child, 'exit');
    assert.equal(code, 1);
    assert.match(output, /BATCH_ADMIN_API_KEY is not set/);
  });
});
