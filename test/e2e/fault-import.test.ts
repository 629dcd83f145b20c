import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { ServiceGroup } from '../support/harness';
import { sleep } from '../support/private-services';
import { eventually, http, shortLeaseEnv } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

const ROWS = 300_000;
const CSV = `id,qty,note\n${Array.from({ length: ROWS }, (_, i) => `${i + 1},${i % 97},"n ${i + 1}"`).join('\n')}\n`;

/**
 * Imports through faults: the worker killed with -9 at random moments of a load (inside a COPY, between the COPY and
 * the commit, right after it) is taken over after the lease and the table ends as one load would leave it; the API
 * process killed in the middle of an upload leaves nothing stored and nothing launched.
 */
describe('fault: imports through killed processes (built service, real broker and database)', () => {
  if (withoutBroker()) return;
  let group: ServiceGroup;
  let key: string;

  before(async () => {
    group = new ServiceGroup(shortLeaseEnv('2000'));
    const first = await group.start();
    await group.start();
    await group.db.query(`CREATE TABLE items (id int PRIMARY KEY, qty int, note text)`);
    const created = await http<{ apiKey: string }>(first, 'POST', '/api/clients', first.adminKey, {
      name: 'loader',
      targets: ['items'],
    });
    key = created.body.apiKey;
  });
  after(() => group?.close());

  const alive = () => group.alive();

  it('kill -9 of the worker mid-load, twice: taken over after the lease, every record loaded once', async () => {
    const response = await fetch(`${alive()[0].url}/api/imports?target=items&chunkSize=2000`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'text/csv' },
      body: CSV,
    });
    const launched = (await response.json()) as IJobExecution;
    assert.equal(response.status, 202, JSON.stringify(launched));
    for (const chunks of [2, 10]) {
      const victim = await group.leaseHolder(launched.instanceId, chunks);
      await sleep(Math.random() * 100);
      await group.killAndReplace(victim);
    }
    const statuses = await eventually(
      async () => {
        const rows = await group.db.query<{ status: string }>(
          `SELECT status FROM batch.job_executions WHERE instance_id = $1 ORDER BY id`,
          [launched.instanceId],
        );
        return rows.at(-1)?.status === 'COMPLETED' ? rows.map((r) => r.status) : undefined;
      },
      120_000,
      'the load to complete',
    );
    assert.deepEqual(statuses, ['FAILED', 'FAILED', 'COMPLETED']);
    assert.equal(await group.db.count(`SELECT count(*) AS n FROM items`), ROWS);
    assert.equal(
      await group.db.count(
        `SELECT count(*) AS n FROM generate_series(1, ${ROWS}) g
          WHERE NOT EXISTS (SELECT 1 FROM items WHERE id = g AND qty = (g - 1) % 97 AND note = 'n ' || g)`,
      ),
      0,
    );
  });

  it('the API process killed during an upload: nothing stored, nothing launched', async () => {
    const executions = () => group.db.count(`SELECT count(*) AS n FROM batch.job_executions`);
    const before = await executions();
    const api = await group.start('api');
    const url = new URL(api.url);
    const socket = connect(Number(url.port), url.hostname);
    socket.on('error', () => undefined);
    socket.write(
      `POST /api/imports?target=items&runId=killed HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\n` +
        `content-type: text/csv\r\ncontent-length: ${CSV.length}\r\n\r\n`,
    );
    socket.write(CSV.slice(0, 3_000_000)); // more than two blocks, so some are stored in the open transaction
    await eventually(
      async () =>
        (await group.db.count(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'INSERT INTO batch.import_blocks%'`,
        )) > 0
          ? true
          : undefined,
      10_000,
      'the upload to store its first blocks',
    );
    api.process.kill('SIGKILL');
    await new Promise((resolve) => api.process.once('exit', resolve));
    socket.destroy();
    await eventually(
      async () =>
        (await group.db.count(`SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'idle in transaction'`)) === 0
          ? true
          : undefined,
      30_000,
      "the killed process's transaction to end",
    );
    assert.equal(await executions(), before);
    assert.equal(
      await group.db.count(`SELECT count(*) AS n FROM batch.import_files WHERE sha256 LIKE 'uploading-%'`),
      0,
    );
    assert.equal(
      await group.db.count(
        `SELECT count(*) AS n FROM batch.import_blocks b LEFT JOIN batch.import_files f ON f.id = b.file_id WHERE f.id IS NULL`,
      ),
      0,
    );
  });
});
