import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { dropDatabase } from '../support/test-database';
import { deleteBrokerObjects, freePort, serviceEnv } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..', '..');

/** A stage of the Dockerfile: its instructions, from FROM to the next FROM. */
interface Stage {
  name: string;
  instructions: { op: string; args: string }[];
}

/** The Dockerfile as stages of instructions (continued lines joined, comments left out). */
function stagesOf(dockerfile: string): Stage[] {
  const stages: Stage[] = [];
  for (const line of dockerfile.replace(/\\\n\s*/g, ' ').split('\n')) {
    const match = /^([A-Z]+)\s+(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, op, args] = match;
    if (op === 'FROM')
      stages.push({ name: /\bAS\s+(\S+)/i.exec(args)?.[1] ?? String(stages.length), instructions: [] });
    else stages.at(-1)!.instructions.push({ op, args });
  }
  return stages;
}

/**
 * The Dockerfile, as far as a machine without a Docker engine can build it: each stage reproduced in a folder of its own
 * (its WORKDIR), with exactly the files its COPY instructions bring from the repository or from an earlier stage, its
 * RUN commands run there with its ENV; then the final stage's CMD started against the test's services and asked for
 * /health. A file a stage needs but does not copy fails its command here as it would in `docker build`.
 */
describe('the Dockerfile, stage by stage without a Docker engine', () => {
  if (withoutBroker()) return;
  const scratch = mkdtempSync(join(tmpdir(), 'batch-image-'));
  const env = serviceEnv();
  after(async () => {
    rmSync(scratch, { recursive: true, force: true });
    await deleteBrokerObjects(env).catch(() => undefined);
    await dropDatabase(env.DB_NAME);
  });

  it('builds each stage with what it copies, and the image starts the built service', async () => {
    const stages = stagesOf(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    assert.deepEqual(
      stages.map((s) => s.name),
      ['build', 'runtime'],
    );
    const folders = new Map<string, string>();
    let cmd: string[] = [];
    let stageEnv: Record<string, string> = {};
    for (const stage of stages) {
      const folder = join(scratch, stage.name);
      mkdirSync(folder);
      folders.set(stage.name, folder);
      stageEnv = {};
      for (const { op, args } of stage.instructions) {
        if (op === 'ENV') {
          const [name, value] = args.split('=');
          stageEnv[name] = value;
        } else if (op === 'COPY') {
          const parts = args.split(/\s+/);
          const from = parts[0].startsWith('--from=')
            ? folders.get(parts.shift()!.slice('--from='.length).split('/')[0])
            : ROOT;
          const destination = parts.pop()!;
          for (const source of parts) {
            const path = join(from!, source.replace(/^\/app\//, ''));
            assert.ok(
              existsSync(path),
              `${stage.name}: COPY ${source}: not in the ${from === ROOT ? 'repository' : 'stage'}`,
            );
            const target = destination.endsWith('/')
              ? join(folder, destination, source.split('/').pop()!)
              : join(folder, destination);
            cpSync(path, target, { recursive: true });
          }
        } else if (op === 'RUN') {
          await run('sh', ['-c', args], {
            cwd: folder,
            // npm's cache of its own: `npm cache clean` in the image must not empty the machine's
            env: {
              PATH: process.env.PATH ?? '',
              HOME: folder,
              npm_config_cache: join(scratch, 'npm-cache'),
              ...stageEnv,
            },
            timeout: 300_000,
          }).catch((error: { stderr: string }) => assert.fail(`${stage.name}: RUN ${args}:\n${error.stderr}`));
        } else if (op === 'CMD') cmd = JSON.parse(args) as string[];
      }
    }
    const image = folders.get('runtime')!;
    assert.equal(existsSync(join(image, 'src', 'main.ts')), false, 'no source in the image');
    assert.equal(existsSync(join(image, 'node_modules', 'typescript')), false, 'no dev dependencies in the image');
    const port = await freePort();
    const service = spawn(cmd[0], cmd.slice(1), {
      cwd: image,
      env: {
        PATH: process.env.PATH ?? '',
        ...stageEnv,
        ...env,
        PORT: String(port),
        API_KEY_ENCRYPTION_SECRET: 'an-example-secret-for-the-image-test-0123456789',
        BATCH_ADMIN_API_KEY: 'an-example-admin-key-for-the-image-test-0123456789',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    service.stdout.on('data', (chunk) => (output += chunk));
    service.stderr.on('data', (chunk) => (output += chunk));
    try {
      const deadline = Date.now() + 60_000;
      let status = 0;
      while (status !== 200 && Date.now() < deadline && service.exitCode === null) {
        status = await fetch(`http://127.0.0.1:${port}/health`).then(
          (response) => response.status,
          () => 0,
        );
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.equal(status, 200, `the image's command did not answer /health:\n${output}`);
    } finally {
      if (service.exitCode === null && service.signalCode === null) {
        service.kill('SIGTERM');
        await new Promise((resolve) => service.once('exit', resolve));
      }
    }
  });
});
