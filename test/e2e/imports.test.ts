import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { BatchServiceClient, BatchServiceError, IJobExecution, IJobRejectList } from '../../src/client';
import { Client } from 'pg';
import { TestDb } from '../support/harness';
import { dbClientConfig, withoutBroker } from '../support/shared-services';
import { http, RMQ_URL, serviceEnv, ServiceProcess, startService } from '../support/service-process';

const run = promisify(execFile);
const CLI = join(__dirname, '..', '..', 'src', 'client', 'cli.js');
const TABLE = `(id int PRIMARY KEY, qty int CHECK (qty >= 0), note text)`;

/** A raw HTTP upload: the body as given, with the headers given (fetch would refuse some of what a caller may send). */
async function post(
  service: ServiceProcess,
  path: string,
  key: string,
  body: Buffer | string,
  headers: Record<string, string> = { 'content-type': 'text/csv' },
): Promise<{ status: number; body: { code?: string } & Partial<IJobExecution> }> {
  const response = await fetch(service.url + path, { method: 'POST', headers: { 'x-api-key': key, ...headers }, body });
  return { status: response.status, body: (await response.json()) as never };
}

/** An HTTP answer read off a raw socket: its status, its headers (lower-cased names) and its JSON body. */
interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: { code?: string; details?: { retryAfterMs?: number } };
}

/**
 * An upload that declares 10 MB and sends a few bytes, then nothing, as a caller that stalls: its answer (once the
 * server closes the connection), and whether it is still open.
 */
function stalledUpload(service: ServiceProcess, key: string): { answer: Promise<RawAnswer>; open(): boolean } {
  const url = new URL(service.url);
  let open = true;
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () =>
      socket.write(
        `POST /api/imports?target=items HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\n` +
          `content-type: text/csv\r\ncontent-length: 10000000\r\n\r\nid,qty,note\n1,`,
      ),
    );
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => (text += data));
    socket.on('error', reject);
    socket.on('close', () => {
      open = false;
      const [head, body] = text.split('\r\n\r\n');
      const [statusLine, ...lines] = (head ?? '').split('\r\n');
      const headers = Object.fromEntries(
        lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
      );
      const json = /^[0-9a-f]+\r\n/.test(body ?? '') ? body.split('\r\n')[1] : body; // chunked or not
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: json ? (JSON.parse(json) as never) : {} });
    });
  });
  return { answer, open: () => open };
}

/**
 * Imports as callers make them, on the built service: the command line and the client package, and the bad input of
 * docs/api.md#imports over HTTP, each answered with the contract's code and nothing stored half-way.
 */
describe('imports (built service, real broker and database)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let key: string;
  let otherKey: string;
  let scratch: string;
  const finished = async (id: string) => {
    for (;;) {
      const { body } = await http<IJobExecution>(service, 'GET', `/api/jobs/executions/${id}`, key);
      if (['COMPLETED', 'FAILED', 'STOPPED'].includes(body.status)) return body;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  before(async () => {
    service = await startService(
      serviceEnv({
        BATCH_JOB_POLL_INTERVAL: '100',
        BATCH_IMPORT_MAX_BYTES: String(40 * 1024 * 1024),
        BATCH_IMPORT_IDLE_TIMEOUT_MS: '5000',
      }),
    );
    db = new TestDb(service.env.DB_NAME);
    await db.query(
      `CREATE TABLE items ${TABLE}; CREATE TABLE others ${TABLE}; CREATE TABLE docs (id int PRIMARY KEY, body text)`,
    );
    const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'loader',
      targets: ['items', 'others', 'docs'],
    });
    key = created.body.apiKey;
    const other = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'other',
      targets: ['others'],
    });
    otherKey = other.body.apiKey;
    scratch = mkdtempSync(join(tmpdir(), 'imports-'));
  });

  after(async () => {
    rmSync(scratch, { recursive: true, force: true });
    await db?.close();
    await service?.destroy();
  });

  it('the command line uploads with progress, follows the load and lists the rejects; its exit code says how it ended', async () => {
    const file = join(scratch, 'items.csv.gz');
    const rows = Array.from({ length: 20_000 }, (_, i) => `${i + 1},${i % 50},"item ${i + 1}"`);
    rows[99] = '100,-5,negative';
    writeFileSync(file, gzipSync(`id,qty,note\n${rows.join('\n')}\n`));
    const args = [CLI, 'import', file, '--target', 'items', '--url', service.url, '--key', key, '--chunk-size', '5000'];
    const completed = await run(process.execPath, [...args, '--skip-limit', '5']).catch(
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    assert.equal((completed as { code?: number }).code, 4, 'completed with skips');
    assert.match(
      completed.stdout,
      /^COMPLETED \(COMPLETED_WITH_SKIPS\): 20000 records read, 19999 written, 1 rejected/,
    );
    assert.match(completed.stdout, /line 101: 23514 new row for relation "items" violates check constraint/);
    assert.match(completed.stderr, /upload .*100%/);
    assert.equal(await db.count(`SELECT count(*) AS n FROM items`), 19_999);

    const failed = await run(process.execPath, [...args, '--run-id', 'strict', '--target', 'others']).catch(
      (error: { code: number; stdout: string }) => error,
    );
    assert.equal((failed as { code: number }).code, 1);
    assert.match(failed.stdout, /^FAILED/);
    const refused = await run(process.execPath, [...args, '--target', 'nowhere']).catch(
      (error: { code: number; stderr: string }) => error,
    );
    assert.deepEqual([(refused as { code: number }).code, /FORBIDDEN/.test(refused.stderr)], [2, true]);
  });

  it('the client package uploads a stream and awaits the execution over RPC', async () => {
    const client = new BatchServiceClient({
      url: RMQ_URL,
      queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey: key,
      httpUrl: service.url,
    });
    try {
      const file = join(scratch, 'others.ndjson');
      writeFileSync(file, '{"id": 1, "qty": 2, "note": "n"}\n{"id": 2, "qty": 3}\n');
      const launched = await client.importFile(file, { target: 'others', mode: 'upsert' });
      const done = await client.waitForJobExecution(launched.id, { intervalMs: 100, timeoutMs: 60_000 });
      assert.deepEqual([done.status, done.steps[0].writeCount], ['COMPLETED', 2]);
      const again = await client
        .importFile(file, { target: 'others', mode: 'upsert' })
        .catch((e: BatchServiceError) => e);
      assert.deepEqual(
        [(again as BatchServiceError).code, (again as BatchServiceError).details],
        ['CONFLICT', { reason: 'JOB_INSTANCE_COMPLETE', executionId: launched.id }],
      );
    } finally {
      await client.close();
    }
  });

  it('a running import shows its progress in /metrics, and no longer once it ended', async () => {
    const csv = 'id,qty,note\n101,1,a\n102,2,b\n';
    const metrics = async () => (await fetch(`${service.url}/metrics`)).text();
    const locker = new Client(dbClientConfig(service.env.DB_NAME));
    await locker.connect();
    try {
      // The table held locked: the import has started and opened its step (its total known), and waits to load.
      await locker.query(`BEGIN; LOCK TABLE others IN ACCESS EXCLUSIVE MODE`);
      const launched = await post(service, '/api/imports?target=others&runId=progress', key, csv);
      assert.equal(launched.status, 202);
      const line = (measure: string, value: number) =>
        `batch_job_progress_${measure}{job="import",execution="${launched.body.id}",unit="bytes"} ${value}`;
      const deadline = Date.now() + 60_000;
      let text = await metrics();
      while (!text.includes(line('total', Buffer.byteLength(csv))) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        text = await metrics();
      }
      assert.ok(text.includes(line('total', Buffer.byteLength(csv))), 'the total bytes of the running import');
      assert.ok(text.includes(line('done', 0)), 'nothing loaded yet');
      await locker.query('COMMIT');
      assert.equal((await finished(launched.body.id!)).status, 'COMPLETED');
      await new Promise((resolve) => setTimeout(resolve, 1100)); // what a scrape reads is kept for a second
      assert.ok(!(await metrics()).includes(`execution="${launched.body.id}"`));
    } finally {
      await locker.end();
    }
  });

  it('bad data is rejected record by record, with the line; a bad upload is refused and launches nothing', async () => {
    const bigField = 'x'.repeat(10 * 1024 * 1024);
    const wide = Array.from({ length: 100_000 }, (_, i) => i).join(',');
    const csv = Buffer.concat([
      Buffer.from(`id,body\n1,"${bigField}"\n2,ok\n3,`),
      Buffer.from([0xc3, 0x28]), // invalid UTF-8
      Buffer.from(`\n${wide}\n5,"never closed\n`),
    ]);
    const loaded = await post(service, '/api/imports?target=docs&skipLimit=10', key, csv);
    assert.equal(loaded.status, 202, JSON.stringify(loaded.body));
    const done = await finished(loaded.body.id!);
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    const rejects = await http<IJobRejectList>(service, 'GET', `/api/jobs/executions/${done.id}/rejects`, key);
    assert.deepEqual(
      rejects.body.items.map((r) => [r.line, r.code]),
      [
        [4, '22021'],
        [5, '22P04'],
        [6, '22P04'],
      ],
    );
    assert.ok(rejects.body.items[1].record!.length <= 1024);
    assert.deepEqual(await db.query(`SELECT id, length(body) AS n FROM docs ORDER BY id`), [
      { id: 1, n: bigField.length },
      { id: 2, n: 2 },
    ]);
    const foreign = await http<{ code: string }>(service, 'GET', `/api/jobs/executions/${done.id}/rejects`, otherKey);
    assert.equal(foreign.status, 404);

    const executions = () => db.count(`SELECT count(*) AS n FROM batch.job_executions`);
    const files = () => db.count(`SELECT count(*) AS n FROM batch.import_files`);
    const [executionsBefore, filesBefore] = [await executions(), await files()];
    const bomb = gzipSync(Buffer.concat([Buffer.from('id,qty,note\n'), Buffer.alloc(100 * 1024 * 1024, '1,1,a\n')]));
    for (const [path, body, headers, status, code] of [
      [
        '/api/imports?target=items',
        'id\n1\n',
        { 'content-type': 'application/octet-stream' },
        400,
        'VALIDATION_FAILED',
      ],
      ['/api/imports?target=items', 'id,ghost\n1,2\n', undefined, 400, 'UNKNOWN_COLUMN'],
      ['/api/imports?target=items', 'id,id\n1,1\n', undefined, 400, 'VALIDATION_FAILED'],
      ['/api/imports?target=items', '', undefined, 400, 'VALIDATION_FAILED'],
      [
        '/api/imports?target=items',
        'not gzip',
        { 'content-type': 'text/csv', 'content-encoding': 'gzip' },
        400,
        'VALIDATION_FAILED',
      ],
      [
        '/api/imports?target=items',
        bomb,
        { 'content-type': 'text/csv', 'content-encoding': 'gzip' },
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      ['/api/imports?target=secret', 'id\n1\n', undefined, 403, 'FORBIDDEN'],
      ['/api/imports?target=items', 'id\n1\n', { 'content-type': 'text/csv' }, 401, 'UNAUTHENTICATED'],
    ] as const) {
      const answer = await post(service, path, status === 401 ? 'bsk_wrong' : key, body, headers);
      assert.deepEqual([answer.status, answer.body.code], [status, code], `${path} ${String(body).slice(0, 20)}`);
    }

    // an upload cut off halfway: the connection closes before the body's declared end
    await new Promise<void>((resolve, reject) => {
      const url = new URL(service.url);
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(
          `POST /api/imports?target=items&runId=cut HTTP/1.1\r\nHost: x\r\nx-api-key: ${key}\r\n` +
            `content-type: text/csv\r\ncontent-length: 100000\r\n\r\nid,qty\n1,1\n2,2\n`,
        );
        setTimeout(() => socket.destroy(), 300);
      });
      socket.on('close', () => resolve());
      socket.on('error', reject);
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(
      [await executions(), await files()],
      [executionsBefore, filesBefore],
      'nothing stored, nothing launched',
    );
  });

  // Uploads cannot starve anything else: they run on connections of their own, a few at once per process and per
  // client, and a body that sends nothing is cut (BATCH_IMPORT_IDLE_TIMEOUT_MS).
  it('fifty stalled uploads: creates, reads and /health answer meanwhile; each stalled one is 429 or 408', async () => {
    const keys: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
        name: `uploader-${i}`,
        targets: ['items'],
      });
      keys.push(created.body.apiKey);
    }
    const executions = () => db.count(`SELECT count(*) AS n FROM batch.job_executions`);
    const files = () => db.count(`SELECT count(*) AS n FROM batch.import_files`);
    const [executionsBefore, filesBefore] = [await executions(), await files()];
    const uploads = keys.flatMap((key) => Array.from({ length: 10 }, () => stalledUpload(service, key)));
    await new Promise((resolve) => setTimeout(resolve, 500)); // every one sent, and taken or refused
    // not a measure of speed: on the service's shared pool, these waited for a connection 2 to 5 s, then failed
    const timed = async (what: string, request: () => Promise<{ status: number }>, status: number) => {
      const started = performance.now();
      const answer = await request();
      const ms = performance.now() - started;
      assert.equal(answer.status, status, what);
      assert.ok(ms < 1000, `${what} answered in ${Math.round(ms)} ms`);
    };
    for (let i = 0; i < 3; i++) {
      await timed('GET /health', () => fetch(`${service.url}/health`), 200);
      await timed(
        'POST /api/operations',
        () =>
          http(service, 'POST', '/api/operations', keys[0], {
            target: 'items',
            type: 'insert',
            values: { id: 900_000 + i, qty: 1, note: 'meanwhile' },
          }),
        201,
      );
      await timed('GET /api/jobs/executions', () => http(service, 'GET', '/api/jobs/executions', keys[1]), 200);
    }
    assert.equal(uploads.filter((upload) => upload.open()).length, 50, 'the stalled uploads were open meanwhile');

    const answers = await Promise.all(uploads.map((upload) => upload.answer));
    const statuses = answers.map((answer) => answer.status);
    assert.deepEqual(
      statuses.filter((status) => status !== 408 && status !== 429),
      [],
      JSON.stringify(statuses),
    );
    const cut = answers.filter((answer) => answer.status === 408);
    assert.ok(cut.length >= 1 && cut.length <= 4, `${cut.length} taken at once (BATCH_IMPORT_MAX_UPLOADS: 4)`);
    for (const answer of cut) {
      assert.equal(answer.body.code, 'REQUEST_TIMEOUT');
      assert.equal(answer.headers.connection, 'close');
    }
    for (const answer of answers.filter((a) => a.status === 429)) {
      assert.equal(answer.body.code, 'RATE_LIMITED');
      assert.ok(answer.body.details!.retryAfterMs! > 0);
      assert.ok(Number(answer.headers['retry-after']) >= 1, JSON.stringify(answer.headers));
    }
    assert.deepEqual(
      [await executions(), await files()],
      [executionsBefore, filesBefore],
      'nothing stored, nothing launched',
    );
  });
});
