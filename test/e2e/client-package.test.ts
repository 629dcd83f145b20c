import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { RMQ_URL, TestDb } from '../support/harness';
import { http, serviceEnv, ServiceProcess, settledQueue, startService } from '../support/service-process';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..', '..');

/**
 * The caller library as another team gets it: the project packed (`npm pack`), the tarball installed into a scratch
 * project, `batch-service/client` imported there by name — by Node, and by TypeScript through the declarations — and
 * an operation created, read and notified through it against the running service.
 */
describe('the caller library, packed and installed into another project (built service)', () => {
  let service: ServiceProcess;
  let db: TestDb;
  let scratch: string;
  let apiKey: string;

  before(async () => {
    service = await startService(serviceEnv());
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.parcels (id int PRIMARY KEY, label text)`);
    apiKey = (
      await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
        name: 'shipping',
        targets: ['parcels'],
      })
    ).body.apiKey;
    scratch = mkdtempSync(join(tmpdir(), 'batch-caller-'));
    // dist/ is what `npm test` just compiled (declarations included); --ignore-scripts keeps prepack from building again.
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', scratch], { cwd: ROOT });
    const tarball = stdout.trim().split('\n').at(-1)!;
    writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch-caller', private: true }));
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', join(scratch, tarball)],
      { cwd: scratch, timeout: 240_000 },
    );
  });

  after(async () => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    await db?.close();
    await service?.destroy();
  });

  it('packs the compiled client with its declarations, and not the tests', () => {
    const files = readdirSync(join(scratch, 'node_modules', 'batch-service', 'dist', 'src', 'client'));
    for (const file of ['index.js', 'index.d.ts', 'batch-service.client.js', 'batch-service.client.d.ts'])
      assert.ok(files.includes(file), file);
    assert.deepEqual(readdirSync(join(scratch, 'node_modules', 'batch-service', 'dist')), ['src']);
  });

  it('is imported by name, creates, reads and is notified of an operation, and loads nothing of the server', async () => {
    writeFileSync(
      join(scratch, 'caller.js'),
      `const { BatchServiceClient, SettledEventsConsumer } = require('batch-service/client');
      (async () => {
        const [url, queue, exchange, apiKey, settled] = process.argv.slice(2);
        const events = new SettledEventsConsumer({ url, exchange, client: 'shipping', queue: settled });
        const notified = new Promise((resolve) => events.start(async (event) => resolve(event.operations[0])));
        const client = new BatchServiceClient({ url, queue, apiKey, timeoutMs: 15000 });
        const created = await client.createOperation({ target: 'parcels', type: 'insert', values: { id: 1, label: 'from the package' } });
        const read = await client.getOperation(created.id);
        const event = await notified;
        const loaded = [...new Set(Object.keys(require.cache).map((f) => (f.match(/node_modules\\/((@[^/]+\\/)?[^/]+)/) || [])[1]).filter(Boolean))];
        await client.close();
        await events.stop();
        console.log(JSON.stringify({ created, read, event, loaded }));
      })().catch((error) => { console.error(error); process.exit(1); });`,
    );
    const { stdout } = await run(
      process.execPath,
      [
        'caller.js',
        RMQ_URL,
        service.env.BATCH_SERVICE_RMQ_QUEUE,
        service.env.BATCH_SERVICE_EVENTS_EXCHANGE,
        apiKey,
        settledQueue(service.env, 'shipping'),
      ],
      { cwd: scratch, timeout: 60_000 },
    );
    const { created, read, event, loaded } = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      created: { id: string; status: string };
      read: { id: string; target: string };
      event: { id: string; status: string };
      loaded: string[];
    };
    assert.equal(created.status, 'PENDING');
    assert.deepEqual([read.id, read.target], [created.id, 'public.parcels']);
    assert.deepEqual([event.id, event.status], [created.id, 'COMPLETED']);
    assert.deepEqual(await db.query('SELECT id, label FROM public.parcels'), [{ id: 1, label: 'from the package' }]);
    const server = loaded.filter((name) =>
      /^(typeorm|pg|pg-pool|ioredis|pino|prom-client|express|@nestjs\/(typeorm|swagger|terminus|platform-express))$/.test(
        name,
      ),
    );
    assert.deepEqual(server, [], `the client loaded only ${loaded.join(', ')}`);
  });

  it('gives TypeScript callers its types through the package exports', async () => {
    writeFileSync(
      join(scratch, 'caller.ts'),
      `import { BatchServiceClient, BatchServiceError, type ICreateBatchOperationRequest } from 'batch-service/client';
      const operation: ICreateBatchOperationRequest = { target: 'parcels', type: 'insert', values: { id: 2 } };
      export const send = (apiKey: string) => new BatchServiceClient({ url: 'amqp://127.0.0.1', apiKey }).createOperation(operation);
      export const isTimeout = (error: unknown) => error instanceof BatchServiceError && error.code === 'TIMEOUT';`,
    );
    writeFileSync(
      join(scratch, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'node16',
          moduleResolution: 'node16',
          target: 'ES2022',
          types: [],
          skipLibCheck: true,
          noEmit: true,
        },
        files: ['caller.ts'],
      }),
    );
    const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: scratch });
    writeFileSync(
      join(scratch, 'wrong.ts'),
      `import { NoSuchThing } from 'batch-service/client';\nexport const x = NoSuchThing;`,
    );
    writeFileSync(
      join(scratch, 'tsconfig.wrong.json'),
      JSON.stringify({ extends: './tsconfig.json', files: ['wrong.ts'] }),
    );
    await assert.rejects(
      run(process.execPath, [tsc, '-p', 'tsconfig.wrong.json'], { cwd: scratch }),
      (error: { stdout: string }) => /has no exported member 'NoSuchThing'/.test(error.stdout),
    );
  });
});
