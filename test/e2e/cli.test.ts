import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ServiceGroup } from '../support/harness';
import { freePort, http, shortLeaseEnv } from '../support/service-process';

const run = promisify(execFile);
const CLI = join(__dirname, '..', '..', 'src', 'client', 'cli.js');
const ROWS = 3000;

interface Ended {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command line run to its end: its exit code and what it wrote. */
function cli(args: string[]): Promise<Ended> {
  return run(process.execPath, [CLI, ...args], { timeout: 180_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: Ended) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

/**
 * `batch-service import` as a user runs it against the built service: it follows its import through a kill -9 of
 * the service and the service's restart, to the end of the execution the service launched in place of the lost one.
 */
describe('the command line through a crash of the service (built service)', () => {
  let group: ServiceGroup;
  let key: string;
  let scratch: string;
  let file: string;
  let url: string;

  before(async () => {
    // a fixed port, so that the service started again is where the command line looks
    group = new ServiceGroup({ ...shortLeaseEnv('2000'), PORT: String(await freePort()) });
    const service = await group.start();
    url = service.url;
    // each chunk's COPY takes a quarter of a second, so that the kill finds the load halfway
    await group.db.query(`
      CREATE TABLE items (id int PRIMARY KEY, qty int, note text);
      CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.25); RETURN NULL; END $$;
      CREATE TRIGGER slow_down AFTER INSERT ON items FOR EACH STATEMENT EXECUTE FUNCTION slow_down()`);
    const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'loader',
      targets: ['items'],
    });
    key = created.body.apiKey;
    scratch = mkdtempSync(join(tmpdir(), 'batch-cli-'));
    file = join(scratch, 'items.csv');
    const rows = Array.from({ length: ROWS }, (_, i) => `${i + 1},${i % 97},"n ${i + 1}"`);
    writeFileSync(file, `id,qty,note\n${rows.join('\n')}\n`);
  });

  after(async () => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    await group?.close();
  });

  it('retries while the service is away, follows the restarted execution and exits 0 once it completed', async () => {
    const args = ['import', file, '--target', 'items', '--chunk-size', '300', '--url', url, '--key', key];
    const ended = cli([...args, '--timeout', '150']);
    const [victim] = group.alive();
    const [{ instance }] = await eventuallyRows(() =>
      group.db.query<{ instance: string }>(`SELECT instance_id AS instance FROM batch.job_executions LIMIT 1`),
    );
    await group.leaseHolder(instance, 2);
    victim.process.kill('SIGKILL');
    await new Promise((resolve) => victim.process.once('exit', resolve));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // the command line finds nobody for a while
    await group.start();

    const { code, stdout, stderr } = await ended;
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    // a request in flight when the process died is reset; the ones after it are refused
    assert.match(
      stderr,
      /the service cannot be reached \(.*(ECONNREFUSED|ECONNRESET).*\); retrying in 1 s \(attempt 1\)/,
    );
    assert.match(stderr, /the service cannot be reached \(.*ECONNREFUSED.*\); retrying in \d+ s \(attempt \d+\)/);
    assert.match(stderr, /reached the service again after [\d.]+ s/);
    assert.match(stderr, /execution \d+ FAILED: its worker .* stopped renewing its lease/);
    assert.match(stderr, /the service started the import again, where it stopped, as execution \d+/);
    assert.match(
      stdout,
      new RegExp(`^COMPLETED \\(COMPLETED\\): ${ROWS} records read, ${ROWS} written, 0 rejected \\(in 2 executions\\)`),
    );
    const statuses = await group.db.query<{ status: string }>(
      `SELECT status FROM batch.job_executions WHERE instance_id = $1 ORDER BY id`,
      [instance],
    );
    assert.deepEqual(
      statuses.map((s) => s.status),
      ['FAILED', 'COMPLETED'],
    );
    assert.equal(await group.db.count(`SELECT count(*) AS n FROM items`), ROWS);

    const again = await cli(args);
    assert.equal(again.code, 2, 'the same file again is refused');
    assert.match(again.stderr, /loaded with these settings already .*; to load it once more, add --run-id <any text>/);
  });

  it('exits 3 naming the address when nothing answers there', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const { code, stderr } = await cli(['import', file, '--target', 'items', '--url', nowhere, '--key', key]);
    assert.equal(code, 3);
    assert.match(stderr, new RegExp(`^cannot reach the service at ${nowhere} \\(.*ECONNREFUSED.*\\): is it running`));
    assert.match(stderr, /--url or \$BATCH_SERVICE_URL/);
    assert.doesNotMatch(stderr, /TypeError/);
  });
});

/** Polls `query` until it finds rows. */
async function eventuallyRows<T>(query: () => Promise<T[]>): Promise<T[]> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
    const rows = await query();
    if (rows.length > 0) return rows;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('timed out waiting for the import to be launched');
}
