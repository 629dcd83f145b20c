import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = join(__dirname, '..', '..', '..');
const read = (file: string) =>
  JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as {
    version: string;
    engines: { node: string };
    dependencies: Record<string, string>;
    peerDependencies?: Record<string, string>;
  };

describe("the client package's manifest (src/client/package.json)", () => {
  const service = read('package.json');
  const client = read('src/client/package.json');

  it('depends on the very versions the service is built and tested with, and supports the same Node', () => {
    for (const [name, version] of Object.entries(client.dependencies))
      assert.equal(version, service.dependencies[name], name);
    assert.equal(client.engines.node, service.engines.node);
    assert.equal(client.version, service.version);
  });

  it("takes the Nest packages as peers, in ranges that hold the service's own versions", () => {
    for (const [name, range] of Object.entries(client.peerDependencies!)) {
      const [major, minor] = service.dependencies[name].split('.').map(Number);
      const [, wantMajor, wantMinor] = /^\^(\d+)\.(\d+)\./.exec(range)!.map(Number);
      assert.ok(major === wantMajor && minor >= wantMinor, `${name} ${service.dependencies[name]} within ${range}`);
    }
  });
});

describe('the command `batch-service`', () => {
  const bins = (file: string) =>
    (JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as { bin: Record<string, string> }).bin;
  const clientBuild = JSON.parse(readFileSync(join(ROOT, 'tsconfig.client.json'), 'utf8')) as { include: string[] };

  it("is the client package's bin, compiled from src/client/cli.ts into the package's lib/", () => {
    assert.equal(bins('src/client/package.json')['batch-service'], './lib/client/cli.js');
    assert.ok(clientBuild.include.includes('src/client/cli.ts'));
    assert.match(readFileSync(join(ROOT, 'src', 'client', 'cli.ts'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  it("is this repository's bin too, so that `npx batch-service` runs it in a checkout (compiled into dist/)", () => {
    const script = bins('package.json')['batch-service'];
    const text = readFileSync(join(ROOT, script), 'utf8');
    assert.match(text, /^#!\/usr\/bin\/env node\n/);
    assert.match(text, /'dist', 'src', 'client', 'cli\.js'/);
    assert.match(text, /build-if-stale\.js/);
  });
});
