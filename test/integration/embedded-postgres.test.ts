import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Client } from 'pg';
import { startEmbeddedPostgres } from '../../src/services/storage/embedded-postgres';
import { freePort } from '../support/service-process';

/** The server's process id, from its lock file. */
const postmaster = (dataDir: string) => Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function query(port: number, sql: string): Promise<Record<string, unknown>[]> {
  const client = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("development's embedded PostgreSQL (the embedded-postgres package's binaries)", () => {
  const folder = mkdtempSync(join(tmpdir(), 'embedded-postgres-'));
  after(() => rmSync(folder, { recursive: true, force: true }));

  it('creates its data, keeps it across starts, and is gone once stopped', async () => {
    const port = await freePort();
    const first = await startEmbeddedPostgres({ folder, port });
    await query(port, 'CREATE TABLE kept (id int)');
    const [settings] = await query(
      port,
      `SELECT current_setting('listen_addresses') AS listen, current_user AS "user"`,
    );
    assert.deepEqual(settings, { listen: '127.0.0.1', user: 'postgres' });
    if (process.getuid?.() === 0)
      assert.notEqual(statSync(first.dataDir).uid, 0, 'as root, the server runs as another user, which owns its data');
    const pid = postmaster(first.dataDir);
    await first.stop();
    assert.equal(alive(pid), false, 'stopped');

    const second = await startEmbeddedPostgres({ folder, port });
    try {
      assert.deepEqual(await query(port, `SELECT to_regclass('kept')::text AS kept`), [{ kept: 'kept' }]);
    } finally {
      await second.stop();
    }
  });

  it(
    'as root, says what to do when its user cannot reach the data (a folder above it closed to others)',
    { skip: process.getuid?.() === 0 ? false : 'runs as root only' },
    async () => {
      const closed = mkdtempSync(join(tmpdir(), 'embedded-postgres-closed-')); // mode 0700, root's
      try {
        await assert.rejects(
          startEmbeddedPostgres({ folder: join(closed, '.embedded-postgres'), port: await freePort() }),
          /PostgreSQL refuses to run as root, and the user nobody .* cannot reach .*: run it as a user other than root/,
        );
      } finally {
        rmSync(closed, { recursive: true, force: true });
      }
    },
  );

  it('ends with the process that started it, even one killed with SIGKILL', async () => {
    const port = await freePort();
    const module = join(__dirname, '..', '..', 'src', 'services', 'storage', 'embedded-postgres.js');
    const owner = spawn(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(module)}).startEmbeddedPostgres({ folder: ${JSON.stringify(folder)}, port: ${port} })
           .then(() => { console.log('ready'); setInterval(() => undefined, 1000); })`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await once(owner.stdout!, 'data');
    const pid = postmaster(join(folder, 'data'));
    assert.equal(alive(pid), true);
    owner.kill('SIGKILL');
    await until(() => !alive(pid), 'the server to end');
  });
});
