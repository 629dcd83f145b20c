import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BatchServiceError } from '../../src/client';
import { Caller, createCaller, settleAll, TestDb } from '../support/harness';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

const STRONG_SECRET = 'obs-e2e-secret-0123456789abcdefghijklmnop';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Prometheus text format → sample name with labels (as written) → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}

/** Sum of every sample of `name` whose labels include all of `labels`. */
function sum(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const [key, value] of samples) {
    const [sampleName, rest = ''] = key.split('{');
    if (sampleName !== name) continue;
    if (Object.entries(labels).every(([label, v]) => rest.includes(`${label}="${v}"`))) total += value;
  }
  return total;
}

type LogLine = Record<string, unknown> & { level: string; time: string; msg: string };

/**
 * What an operator sees of the built service, started in production mode: Prometheus metrics that add up to what
 * was sent, readiness and liveness probes, and JSON log lines carrying request and execution ids.
 */
describe('operating it: metrics, health and structured logs (built service in production mode)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let shop: Caller;
  let failedExecutionId: string;
  const adminKey = 'obs-e2e-admin-key-abcdefghijklmnopqrstuvwxyz';

  before(async () => {
    service = await startService(
      serviceEnv({
        NODE_ENV: 'production',
        LOG_LEVEL: 'debug',
        API_KEY_ENCRYPTION_SECRET: STRONG_SECRET,
        BATCH_ADMIN_API_KEY: adminKey,
      }),
    );
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL UNIQUE)`);
    shop = await createCaller(service, 'shop', ['items']);

    // 50 in one bulk request, 5 one by one plus a repeated one (not stored again), 1 that fails, 1 over REST: 57 stored
    await shop.rpc.createOperations(
      Array.from({ length: 50 }, (_, i) => ({
        target: 'items',
        type: 'insert' as const,
        values: { id: i, name: `bulk-${i}` },
      })),
    );
    for (let i = 0; i < 5; i++)
      await shop.rpc.createOperation({
        target: 'items',
        type: 'insert',
        values: { id: 100 + i, name: `one-${i}` },
        idempotencyKey: `one-${i}`,
      });
    const repeated = await shop.rpc.createOperation({
      target: 'items',
      type: 'insert',
      values: { id: 100, name: 'one-0' },
      idempotencyKey: 'one-0',
    });
    assert.equal(repeated.duplicate, true);
    const failing = await shop.rpc.createOperation({
      target: 'items',
      type: 'insert',
      values: { id: 200, name: 'bulk-0' },
    });
    await assert.rejects(
      shop.rpc.createOperation({ target: 'items', type: 'insert', values: { id: 'x', name: 'bad' } }),
      (e: BatchServiceError) => e.code === 'VALIDATION_FAILED',
    );
    const rest = await fetch(`${service.url}/api/operations`, {
      method: 'POST',
      headers: { 'x-api-key': shop.apiKey, 'content-type': 'application/json', 'x-request-id': 'abc-123' },
      body: JSON.stringify({ target: 'items', type: 'insert', values: { id: 300, name: 'rest' } }),
    });
    assert.equal(rest.status, 201);
    assert.equal(rest.headers.get('x-request-id'), 'abc-123');

    const settled = await settleAll(db, shop);
    assert.equal(settled.length, 57);
    const failed = await shop.rpc.getOperation(failing.id);
    assert.equal(failed.status, 'FAILED');
    failedExecutionId = failed.executionId!;
  });

  after(async () => {
    await shop?.close();
    await db?.close();
    const code = await service?.stop();
    await service?.destroy();
    assert.equal(code, 0, `the service exits cleanly on SIGTERM:\n${service?.logs()}`);
  });

  it('serves /metrics without a key, in the Prometheus text format', async () => {
    const response = await fetch(`${service.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain;.*\bversion=0\.0\.4\b/);
    const text = await response.text();
    assert.match(text, /^# HELP batch_operations_created_total /m);
    assert.match(text, /^# TYPE batch_chunk_duration_seconds histogram$/m);
  });

  it('counts what was created and settled, chunks, statements and fallbacks, and shows an empty queue', async () => {
    // the queue gauges are read at most once a second: wait for a reading taken after everything settled
    const samples = await eventually(
      async () => {
        const current = parseMetrics(await (await fetch(`${service.url}/metrics`)).text());
        return sum(current, 'batch_queue_operations', { status: 'COMPLETED' }) === 56 &&
          sum(current, 'batch_outbox_backlog') === 0
          ? current
          : undefined;
      },
      20_000,
      'queue gauges after settlement',
    );

    assert.equal(sum(samples, 'batch_operations_created_total'), 57);
    assert.equal(sum(samples, 'batch_operations_created_total', { target: 'public.items', type: 'insert' }), 57);
    assert.equal(sum(samples, 'batch_operations_settled_total'), 57);
    assert.equal(sum(samples, 'batch_operations_settled_total', { status: 'COMPLETED', target: 'public.items' }), 56);
    assert.equal(sum(samples, 'batch_operations_settled_total', { status: 'FAILED', target: 'public.items' }), 1);

    assert.ok(sum(samples, 'batch_chunk_duration_seconds_count') > 0, 'committed chunks are timed');
    assert.ok(sum(samples, 'batch_chunk_duration_seconds_sum') > 0);
    assert.equal(sum(samples, 'batch_chunk_operations_sum'), 57, 'the chunks claimed every operation once');
    assert.equal(sum(samples, 'batch_chunk_operations_count'), sum(samples, 'batch_chunk_duration_seconds_count'));
    assert.ok(sum(samples, 'batch_statements_total', { target: 'public.items', type: 'insert' }) >= 1);
    assert.ok(
      sum(samples, 'batch_statement_fallbacks_total', { target: 'public.items', type: 'insert' }) >= 1,
      'the unique violation made a statement fall back',
    );
    assert.ok(sum(samples, 'batch_statement_fallbacks_total') <= sum(samples, 'batch_statements_total'));
    assert.equal(sum(samples, 'batch_chunk_failures_total'), 0);

    assert.equal(sum(samples, 'batch_queue_operations', { status: 'PENDING' }), 0);
    assert.equal(sum(samples, 'batch_queue_operations', { status: 'FAILED' }), 1);
    assert.equal(sum(samples, 'batch_queue_operations', { status: 'CANCELLED' }), 0);
    assert.equal(sum(samples, 'batch_queue_oldest_pending_age_seconds'), 0);
    // the relay runs in a thread with a V8 heap of its own, which the nodejs_heap_* metrics leave out
    const relayHeap = ['used', 'total'].map((kind) => sum(samples, 'batch_outbox_relay_heap_bytes', { kind }));
    assert.ok(
      relayHeap[0] > 0 && relayHeap[1] >= relayHeap[0],
      `the relay thread's heap, used and total: ${relayHeap}`,
    );

    assert.equal(
      sum(samples, 'batch_rpc_request_duration_seconds_count', { pattern: 'createOperations', outcome: 'OK' }),
      1,
    );
    assert.equal(
      sum(samples, 'batch_rpc_request_duration_seconds_count', { pattern: 'createOperation', outcome: 'OK' }),
      7,
    );
    assert.equal(
      sum(samples, 'batch_rpc_request_duration_seconds_count', {
        pattern: 'createOperation',
        outcome: 'VALIDATION_FAILED',
      }),
      1,
    );
    assert.equal(
      sum(samples, 'batch_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/api/operations',
        code: '201',
      }),
      1,
    );
    assert.equal(
      sum(samples, 'batch_http_request_duration_seconds_count', { method: 'POST', route: '/api/clients', code: '201' }),
      1,
    );

    assert.ok(samples.has('process_cpu_user_seconds_total'), 'default process metrics');
    assert.ok(sum(samples, 'process_resident_memory_bytes') > 0);
    assert.ok(samples.has('nodejs_eventloop_lag_seconds'));
  });

  it('is ready when the database, the broker and Redis are up, and says so without a key', async () => {
    const health = await eventually(
      async () => {
        const response = await http<{
          status: string;
          info: Record<string, { status: string }>;
          error: object;
          details: Record<string, { status: string }>;
        }>(service, 'GET', '/health', null);
        return response.status === 200 ? response : undefined;
      },
      10_000,
      'readiness',
    );
    assert.equal(health.body.status, 'ok');
    assert.deepEqual(Object.keys(health.body.details).sort(), ['broker', 'database', 'redis']);
    for (const dependency of ['database', 'broker', 'redis'])
      assert.equal(health.body.details[dependency].status, 'up', dependency);
    assert.deepEqual(health.body.error, {});
    assert.equal((health.body.details.redis as { optional?: boolean }).optional, true);
  });

  it('is alive, without a key', async () => {
    const live = await http<{ status: string }>(service, 'GET', '/health/live', null);
    assert.equal(live.status, 200);
    assert.equal(live.body.status, 'ok');
  });

  it('documents /health, /health/live and /metrics in the OpenAPI document', async () => {
    const docs = await http<{ paths: Record<string, { get?: { responses: Record<string, unknown> } }> }>(
      service,
      'GET',
      '/api/docs-json',
      null,
    );
    assert.ok(docs.body.paths['/health']?.get?.responses['503'], '/health documents its 503');
    assert.ok(docs.body.paths['/health/live']?.get);
    assert.ok(docs.body.paths['/metrics']?.get);
  });

  it('logs JSON lines: HTTP requests with their request id, RPC calls with theirs, chunks with their execution id', async () => {
    const generated = await fetch(`${service.url}/api/targets`, { headers: { 'x-api-key': shop.apiKey } });
    const generatedId = generated.headers.get('x-request-id') ?? '';
    assert.match(generatedId, UUID, 'a request without x-request-id gets a generated one');
    const lines = await eventually(
      async () => {
        const parsed = service
          .logs()
          .split('\n')
          .filter((line) => line.trim() !== '')
          .map((line) => {
            try {
              return JSON.parse(line) as LogLine;
            } catch {
              assert.fail(`not a JSON line: ${line}`);
            }
          });
        return parsed.some((l) => l.requestId === generatedId) ? parsed : undefined;
      },
      5000,
      'the log line of the last request',
    );

    for (const line of lines) {
      assert.equal(typeof line.msg, 'string', JSON.stringify(line));
      assert.ok(['fatal', 'error', 'warn', 'info', 'debug'].includes(line.level), JSON.stringify(line));
      assert.ok(!Number.isNaN(Date.parse(line.time)), JSON.stringify(line));
    }

    const restCreate = lines.find((l) => l.requestId === 'abc-123');
    assert.ok(restCreate, 'the request sent with x-request-id: abc-123 is logged with it');
    assert.match(restCreate.msg, /^POST \/api\/operations 201 in \d+ ms$/);
    assert.deepEqual(restCreate.req, { method: 'POST', url: '/api/operations' });
    assert.equal(lines.find((l) => l.requestId === generatedId)?.level, 'info');

    const rpcCalls = lines.filter((l) => l.context === 'RpcCall' && l.pattern === 'createOperation');
    assert.equal(rpcCalls.length, 8, 'one debug line per createOperation call');
    for (const call of rpcCalls) {
      assert.equal(typeof call.requestId, 'string');
      assert.equal(typeof call.correlationId, 'string');
    }
    assert.equal(new Set(rpcCalls.map((c) => c.requestId)).size, 8, 'each call has its own request id');
    assert.deepEqual(rpcCalls.map((c) => c.outcome).sort(), [...Array(7).fill('OK'), 'VALIDATION_FAILED'].sort());

    const chunk = lines.find((l) => l.context === 'ChunkStep' && l.level === 'warn');
    assert.ok(chunk, 'the execution with a failed operation is logged');
    assert.equal(chunk.chunkId, failedExecutionId);
    assert.equal(chunk.failed, 1);

    const all = service.logs();
    for (const secret of [shop.apiKey, adminKey, STRONG_SECRET])
      assert.ok(!all.includes(secret), 'no key or secret is logged');
  });
});

/** In development the same lines are human-readable, and still carry their ids (tests grep them). */
describe('operating it: human-readable logs in development', () => {
  let service: ServiceProcess;

  before(async () => {
    service = await startService(serviceEnv({ LOG_LEVEL: 'info' }));
  });

  after(async () => {
    await service?.destroy();
  });

  it('writes one readable line per entry, with the request id of an HTTP request', async () => {
    const response = await fetch(`${service.url}/api/stats`, {
      headers: { 'x-api-key': service.adminKey, 'x-request-id': 'abc-123' },
    });
    assert.equal(response.status, 200);
    const line = await eventually(
      async () =>
        service
          .logs()
          .split('\n')
          .find((l) => l.includes('GET /api/stats 200')),
      5000,
      'the request line',
    );
    assert.match(line, /INFO.*GET \/api\/stats 200 in \d+ ms.*"requestId":"abc-123"/);
    assert.throws(() => JSON.parse(line));
    assert.match(service.logs(), /INFO: \[Bootstrap\] Batch Service \(all\) listening on port/);
  });
});

/**
 * Not ready: a production worker whose broker is unreachable answers 503 with terminus' body; Redis down does not
 * count. (A development process started without a broker is ready: without-broker.test.ts.)
 */
describe('operating it: readiness when a dependency is down', () => {
  let service: ServiceProcess;

  before(async () => {
    service = await startService(
      serviceEnv({
        NODE_ENV: 'production',
        API_KEY_ENCRYPTION_SECRET: randomBytes(32).toString('hex'),
        BATCH_ADMIN_API_KEY: randomBytes(32).toString('hex'),
        BATCH_ROLE: 'worker',
        BATCH_SERVICE_RMQ_URL: 'amqp://guest:guest@127.0.0.1:1',
        REDIS_URL: 'redis://127.0.0.1:1',
      }),
    );
  });

  after(async () => {
    await service?.destroy();
  });

  it('answers 503 naming the broker, lists Redis as down but optional, and stays alive', async () => {
    type Health = {
      status: string;
      info: Record<string, unknown>;
      error: Record<string, { status: string; optional?: boolean }>;
      details: Record<string, { status: string; optional?: boolean }>;
    };
    const health = await http<Health>(service, 'GET', '/health', null);
    assert.equal(health.status, 503);
    assert.equal(health.body.status, 'error');
    assert.deepEqual(health.body.details.broker, { status: 'down', outboxRelay: 'disconnected' });
    assert.equal(health.body.details.database.status, 'up');
    assert.deepEqual(Object.keys(health.body.error).sort(), ['broker', 'redis']);
    assert.equal(health.body.details.redis.status, 'down');
    assert.equal(health.body.details.redis.optional, true);
    const live = await http<{ status: string }>(service, 'GET', '/health/live', null);
    assert.equal(live.status, 200);
  });
});
