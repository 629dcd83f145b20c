import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';

const ROOT = join(__dirname, '..', '..', '..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

/**
 * The Docker files, as far as a machine without a Docker engine can check them: `docker compose config` where the
 * Compose plugin exists, and in any case the file parsed and its health checks and image read.
 */
describe('docker-compose.yml and the Dockerfile', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, { healthcheck?: { test: string[] }; environment?: Record<string, string> }>;
  };

  it('is a valid Compose file (docker compose config, where the Compose plugin is installed)', (t) => {
    if (spawnSync('docker', ['compose', 'version']).status !== 0) {
      t.skip('the Docker Compose plugin is not installed here: checked by parsing only');
      return;
    }
    execFileSync('docker', ['compose', 'config', '--quiet'], { cwd: ROOT, stdio: 'pipe' });
  });

  it('has every service checked for health, the api and worker through GET /health', () => {
    for (const [name, service] of Object.entries(compose.services))
      assert.ok(service.healthcheck?.test, `${name} has a healthcheck`);
    for (const name of ['api', 'worker'])
      assert.match(compose.services[name].healthcheck!.test.join(' '), /fetch\('http:\/\/127\.0\.0\.1:3000\/health'\)/);
    assert.deepEqual(
      [compose.services.api.environment?.BATCH_ROLE, compose.services.worker.environment?.BATCH_ROLE],
      ['api', 'worker'],
    );
  });

  it('builds on a current LTS of Node, checks /health, and runs the compiled service with its Node flags', () => {
    const dockerfile = read('Dockerfile');
    assert.deepEqual(
      [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]),
      ['node:24-bookworm-slim', 'node:24-bookworm-slim'],
    );
    assert.match(dockerfile, /^HEALTHCHECK .*\n\s+CMD \["node", "-e", "fetch\('http:\/\/127\.0\.0\.1:'/m);
    const start = JSON.parse(read('package.json')).scripts.start as string;
    assert.match(start, /\$\(cat scripts\/node-flags\)/, 'npm start takes the Node flags from their one place');
    assert.ok(
      dockerfile.includes(`CMD ["sh", "-c", "exec ${start}"]`),
      'the image starts the service as npm start does',
    );
    assert.match(dockerfile, /^COPY scripts\/node-flags /m);
  });
});
