import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { TestDb } from '../support/harness';
import { eventually, http, serviceEnv, ServiceProcess, settledQueue, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..', '..');
const rootPackage = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/**
 * The client package as another team gets it: `npm run pack:client`'s tarball installed into an empty project, then
 * imported by name and called against the running service from a classic NestJS project (CommonJS, moduleResolution
 * node), from ES modules (nodenext, and bundler resolution) and from plain JavaScript, each type-checked by
 * TypeScript where it is TypeScript.
 */
describe('the client package, installed into a caller of each kind (built service)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let scratch: string;
  let args: string[];

  before(async () => {
    service = await startService(serviceEnv());
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.parcels (id int PRIMARY KEY, label text)`);
    const { body } = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'shipping',
      targets: ['parcels'],
    });
    args = [
      service.env.BATCH_SERVICE_RMQ_URL,
      service.env.BATCH_SERVICE_RMQ_QUEUE,
      service.env.BATCH_SERVICE_EVENTS_EXCHANGE,
      body.apiKey,
      settledQueue(service.env, 'shipping'),
    ];
    const { stdout } = await run(process.execPath, [join(ROOT, 'scripts', 'pack-client.js')], { cwd: ROOT });
    const tarball = stdout.trim().split('\n').at(-1)!;
    scratch = mkdtempSync(join(tmpdir(), 'batch-caller-'));
    writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch-caller', private: true }));
    const pinned = (name: string) => `${name}@${rootPackage.devDependencies[name] ?? rootPackage.dependencies[name]}`;
    await run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        tarball,
        pinned('typescript'),
        pinned('@types/node'),
        pinned('@nestjs/core'),
      ],
      { cwd: scratch, timeout: 240_000 },
    );
  });

  after(async () => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    await db?.close();
    await service?.destroy();
  });

  /** Writes a caller's files into a folder of the scratch project. */
  function caller(folder: string, files: Record<string, unknown>): string {
    const dir = join(scratch, folder);
    mkdirSync(dir, { recursive: true });
    for (const [name, content] of Object.entries(files))
      writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    return dir;
  }

  /** TypeScript's compiler on a caller; refused with what it said. */
  const tsc = (dir: string) =>
    run(process.execPath, [join(scratch, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: dir,
    }).catch((error: { stdout: string }) => {
      throw Object.assign(new Error(`tsc refused ${dir}:\n${error.stdout}`), { stdout: error.stdout });
    });

  /** Runs a caller with the service's coordinates; its last line of output, parsed. */
  async function call(file: string, label: string): Promise<{ lines: string[]; result: Record<string, unknown> }> {
    const { stdout } = await run(process.execPath, [file, ...args, label], { cwd: scratch, timeout: 60_000 });
    const lines = stdout.trim().split('\n');
    return { lines, result: JSON.parse(lines.at(-1)!) as Record<string, unknown> };
  }

  const labels = async () =>
    (await db.query<{ label: string }>(`SELECT label FROM public.parcels ORDER BY id`)).map((row) => row.label);

  it('installs nothing of the server', () => {
    for (const name of ['typeorm', 'pg', 'ioredis', 'express', '@nestjs/platform-express', 'swagger-ui-dist', 'pino'])
      assert.equal(existsSync(join(scratch, 'node_modules', name)), false, name);
    const installed = JSON.parse(
      readFileSync(join(scratch, 'node_modules', 'batch-service-client', 'package.json'), 'utf8'),
    );
    assert.deepEqual(Object.keys(installed.dependencies).sort(), ['amqp-connection-manager', 'amqplib']);
  });

  it('serves a classic NestJS project (CommonJS, moduleResolution node) through its module: send and emit', async () => {
    const dir = caller('classic', {
      'tsconfig.json': {
        compilerOptions: {
          module: 'commonjs',
          moduleResolution: 'node',
          ignoreDeprecations: '6.0', // node (node10) resolution, as classic NestJS projects have it
          target: 'ES2021',
          types: ['node'],
          strict: true,
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          outDir: 'out',
        },
        files: ['main.ts'],
      },
      'main.ts': `import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { BatchServiceClient, BatchServiceClientModule } from 'batch-service-client';

const [url, queue, , apiKey, , label] = process.argv.slice(2);

@Injectable()
class Parcels {
  constructor(readonly batch: BatchServiceClient) {}
}

@Module({ imports: [BatchServiceClientModule.register({ url, queue, apiKey })], providers: [Parcels] })
class ParcelsModule {}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(ParcelsModule, { logger: false });
  const { batch } = app.get(Parcels);
  const sent = await batch.createOperation({ target: 'parcels', type: 'insert', values: { id: 1, label } });
  await batch.emitOperation({ target: 'parcels', type: 'insert', values: { id: 2, label: label + ' emitted' } });
  await app.close();
  console.log(JSON.stringify({ status: sent.status }));
}
main().catch((error) => { console.error(error); process.exit(1); });
`,
    });
    await tsc(dir);
    const { result } = await call('classic/out/main.js', 'classic');
    assert.equal(result.status, 'PENDING');
  });

  for (const [folder, compilerOptions] of [
    ['nodenext', { module: 'nodenext', moduleResolution: 'nodenext' }],
    ['bundler', { module: 'esnext', moduleResolution: 'bundler' }],
  ] as const) {
    it(`serves ES modules resolved as ${folder}`, async () => {
      const dir = caller(folder, {
        'package.json': { type: 'module' },
        'tsconfig.json': {
          compilerOptions: { ...compilerOptions, target: 'ES2022', strict: true, types: ['node'], outDir: 'out' },
          files: ['main.ts'],
        },
        'main.ts': `import { BatchServiceClient, BatchServiceError, type ICreateBatchOperationRequest } from 'batch-service-client';

const [url, queue, , apiKey, , label] = process.argv.slice(2);
const batch = new BatchServiceClient({ url, queue, apiKey });
const operation: ICreateBatchOperationRequest = { target: 'parcels', type: 'insert', values: { id: ${folder === 'nodenext' ? 3 : 4}, label } };
const created = await batch.createOperation(operation);
const refused = await batch.createOperation({ target: 'nowhere', type: 'insert', values: { id: 1 } }).catch((error: unknown) => error);
await batch.close();
console.log(JSON.stringify({ status: created.status, refused: refused instanceof BatchServiceError ? refused.code : String(refused) }));
`,
      });
      await tsc(dir);
      const { result } = await call(`${folder}/out/main.js`, folder);
      assert.deepEqual(result, { status: 'PENDING', refused: 'UNKNOWN_TARGET' });
    });
  }

  it('serves plain JavaScript, logs nothing of its own, and is notified through the package', async () => {
    caller('plain', {
      'main.js': `const { BatchServiceClient, SettledEventsConsumer } = require('batch-service-client');
(async () => {
  const [url, queue, exchange, apiKey, settled, label] = process.argv.slice(2);
  const events = new SettledEventsConsumer({ url, exchange, client: 'shipping', queue: settled });
  const batch = new BatchServiceClient({ url, queue, apiKey, timeoutMs: 15000 });
  const heard = new Map();
  let wanted = null;
  let found;
  const notified = new Promise((resolve) => (found = resolve));
  // listening before creating, so that the notification finds the queue bound
  await events.start(async (event) => {
    for (const o of event.operations) heard.set(o.id, o);
    if (wanted && heard.has(wanted)) found(heard.get(wanted));
  });
  const created = await batch.createOperation({ target: 'parcels', type: 'insert', values: { id: 5, label } });
  wanted = created.id;
  if (heard.has(wanted)) found(heard.get(wanted));
  const read = await batch.getOperation(created.id);
  const event = await notified;
  await batch.close();
  await events.stop();
  console.log(JSON.stringify({ created, read, event }));
})().catch((error) => { console.error(error); process.exit(1); });
`,
    });
    const { lines, result } = await call('plain/main.js', 'plain');
    assert.equal(lines.length, 1, `only its own output on stdout: ${lines.join('\n')}`);
    const { created, read, event } = result as {
      created: { id: string; status: string };
      read: { id: string; target: string };
      event: { id: string; status: string };
    };
    assert.equal(created.status, 'PENDING');
    assert.deepEqual([read.id, read.target], [created.id, 'public.parcels']);
    assert.deepEqual([event.id, event.status], [created.id, 'COMPLETED']);
  });

  it('stored what each caller sent', async () => {
    await eventually(async () => ((await labels()).length === 5 ? true : undefined), 20_000, 'every parcel');
    assert.deepEqual(await labels(), ['classic', 'classic emitted', 'nodenext', 'bundler', 'plain']);
  });

  it('brings its command line, run by `npx batch-service`: help with the exit codes, then an import', async () => {
    const npx = (...command: string[]) =>
      run('npx', ['batch-service', ...command], { cwd: scratch, timeout: 120_000, env: { ...process.env } });
    const help = await npx('--help');
    assert.match(help.stdout, /^batch-service import <file> --target <table> \[options\]/);
    assert.match(help.stdout, /Exit codes:\n {2}0 {2}completed\n/);
    writeFileSync(join(scratch, 'parcels.csv'), 'id,label\n6,npx\n');
    const { stdout } = await npx(
      'import',
      'parcels.csv',
      '--target',
      'parcels',
      '--url',
      service.url,
      '--key',
      args[3],
    );
    assert.match(stdout, /^COMPLETED \(COMPLETED\): 1 records read, 1 written, 0 rejected/);
    assert.deepEqual((await labels()).at(-1), 'npx');
  });

  it('refuses, to TypeScript, a name the package does not export', async () => {
    const dir = caller('wrong', {
      'tsconfig.json': { compilerOptions: { module: 'nodenext', strict: true, noEmit: true }, files: ['main.ts'] },
      'main.ts': `import { NoSuchThing } from 'batch-service-client';\nexport const x = NoSuchThing;\n`,
    });
    await assert.rejects(tsc(dir), (error: { stdout: string }) =>
      /has no exported member 'NoSuchThing'/.test(error.stdout),
    );
  });
});
