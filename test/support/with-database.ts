import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/app-config';
import { answers } from '../../src/development-services';
import { EmbeddedPostgres, startEmbeddedPostgres } from '../../src/services/storage/embedded-postgres';
import { freePort } from './service-process';

/**
 * `node build/test/support/with-database.js <command…>`: runs the command (npm test's test runner) with a PostgreSQL
 * to test against. Where the tests' server answers, or a DB_* variable names one, the command runs as it is. On a
 * machine without one (in development, no DB_* set, nothing on 127.0.0.1:5432) it runs against an embedded
 * PostgreSQL started for the run, in a temporary folder on a free port (DB_HOST and DB_PORT point the tests at it),
 * and removed after.
 */
async function main(): Promise<number> {
  const [command, ...args] = process.argv.slice(2);
  const config = loadConfig(process.env);
  const env = { ...process.env };
  let server: EmbeddedPostgres | null = null;
  let folder: string | null = null;
  if (config.db.embedded && !(await answers(config.db.host, config.db.port))) {
    folder = mkdtempSync(join(tmpdir(), 'batch-test-postgres-'));
    const port = await freePort();
    server = await startEmbeddedPostgres({ folder, port });
    Object.assign(env, { DB_HOST: '127.0.0.1', DB_PORT: String(port) });
    console.log(
      `No PostgreSQL answers on ${config.db.host}:${config.db.port}: the tests run against an embedded one on port ${port}`,
    );
  }
  try {
    const tests = spawn(command, args, { stdio: 'inherit', env });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => tests.kill(signal));
    const [code, signal] = (await once(tests, 'exit')) as [number | null, NodeJS.Signals | null];
    return code ?? (signal ? 1 : 0);
  } finally {
    await server?.stop();
    if (folder) rmSync(folder, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
