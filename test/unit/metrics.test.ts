import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  ChunkSummary,
  ClaimedOperation,
  OperationOutcome,
  StatementPlan,
} from '../../src/interfaces/chunk.interfaces';
import type { OperationType } from '../../src/interfaces/operation.interfaces';
import { targetTable } from '../support/catalog-fixtures';
import {
  Metrics,
  MetricsChunkListener,
  MetricsIngestListener,
  sharedFor,
} from '../../src/services/observability/metrics.service';
import type { QueueStats, StatsService } from '../../src/services/queue-views/stats.service';
import { claimedId } from '../support/claimed';
import type { NamedDatabases } from '../../src/services/storage/named-databases';

const QUEUE: QueueStats = {
  byStatus: { PENDING: 3, COMPLETED: 40, FAILED: 2, CANCELLED: 1 },
  byTarget: [],
  oldestPendingAgeSeconds: 12.5,
  throughput: [],
  outboxBacklog: 7,
};

/** A StatsService that counts its calls and answers `answer()`. */
function stats(answer: () => Promise<QueueStats> = async () => QUEUE) {
  const fake = { calls: 0, queue: async () => (fake.calls++, answer()) };
  return fake as typeof fake & StatsService;
}

/** The value of one sample in Prometheus text output, or undefined when there is no such sample. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

function operation(id: string, target: string, clientId: string): ClaimedOperation {
  return claimedId(id, { target, clientId });
}

const outcome = (op: ClaimedOperation, status: 'COMPLETED' | 'FAILED'): OperationOutcome => ({
  operation: op,
  status,
  rowsAffected: status === 'COMPLETED' ? 1 : null,
  error: null,
});

describe('sharedFor', () => {
  it('shares a load in flight, serves its value for ttl after it settled, then loads again', async () => {
    let clock = 0;
    let loads = 0;
    let release!: (n: number) => void;
    const shared = sharedFor(
      1000,
      () => new Promise<number>((resolve) => ((loads += 1), (release = resolve))),
      () => clock,
    );
    const first = shared();
    const second = shared();
    clock = 5000; // still in flight: shared however long it takes
    assert.equal(shared(), first);
    assert.equal(loads, 1);
    release(1);
    assert.equal(await second, 1);
    clock = 5999;
    assert.equal(await shared(), 1);
    assert.equal(loads, 1);
    clock = 6000;
    const third = shared();
    assert.equal(loads, 2);
    release(2);
    assert.equal(await third, 2);
  });

  it('serves a failure for ttl as well, so that an outage is not hammered', async () => {
    let clock = 0;
    let loads = 0;
    const shared = sharedFor(
      1000,
      async () => ((loads += 1), Promise.reject(new Error('down'))),
      () => clock,
    );
    await assert.rejects(shared(), /down/);
    clock = 999;
    await assert.rejects(shared(), /down/);
    assert.equal(loads, 1);
    clock = 1000;
    await assert.rejects(shared(), /down/);
    assert.equal(loads, 2);
  });
});

/** No database besides the service's own. */
const NO_DATABASES = { all: () => [] } as unknown as NamedDatabases;

describe('Metrics', () => {
  it('reads the queue gauges from StatsService on scrape, once for all of them and for a burst of scrapes', async () => {
    const source = stats();
    const metrics = new Metrics(source, NO_DATABASES);
    const scrapes = await Promise.all(Array.from({ length: 20 }, () => metrics.registry.metrics()));
    assert.equal(source.calls, 1);
    const text = scrapes[19];
    assert.equal(sample(text, 'batch_queue_operations{status="PENDING"}'), 3);
    assert.equal(sample(text, 'batch_queue_operations{status="COMPLETED"}'), 40);
    assert.equal(sample(text, 'batch_queue_operations{status="FAILED"}'), 2);
    assert.equal(sample(text, 'batch_queue_operations{status="CANCELLED"}'), 1);
    assert.equal(sample(text, 'batch_queue_oldest_pending_age_seconds'), 12.5);
    assert.equal(sample(text, 'batch_outbox_backlog'), 7);
  });

  it('shows NaN in the queue gauges, neither stale values nor 0, while the database does not answer, and still serves the rest', async () => {
    let fail = false;
    const metrics = new Metrics(
      stats(async () => (fail ? Promise.reject(new Error('connection refused')) : QUEUE)),
      NO_DATABASES,
    );
    assert.equal(sample(await metrics.registry.metrics(), 'batch_outbox_backlog'), 7);
    fail = true;
    await new Promise((resolve) => setTimeout(resolve, 1050)); // past the cache
    const text = await metrics.registry.metrics();
    for (const name of [
      'batch_outbox_backlog',
      'batch_queue_oldest_pending_age_seconds',
      'batch_queue_operations{status="PENDING"}',
      'batch_queue_operations{status="FAILED"}',
    ]) {
      assert.ok(Number.isNaN(sample(text, name)), `${name} is NaN`);
    }
    assert.ok(sample(text, 'process_cpu_user_seconds_total')! >= 0, 'default process metrics are still there');
  });

  it('keeps a registry per instance, so that two apps in one process do not clash', async () => {
    const a = new Metrics(stats(), NO_DATABASES);
    const b = new Metrics(stats(), NO_DATABASES);
    a.chunkFailures.inc();
    assert.equal(sample(await a.registry.metrics(), 'batch_chunk_failures_total'), 1);
    assert.equal(sample(await b.registry.metrics(), 'batch_chunk_failures_total'), 0);
  });
});

describe('metrics listeners', () => {
  it('count created operations by target and type: /metrics needs no key, so it names no client', async () => {
    const metrics = new Metrics(stats(), NO_DATABASES);
    const created = (target: string, type: OperationType) => ({ target, type });
    new MetricsIngestListener(metrics).afterCreate([
      created('public.a', 'insert'),
      created('public.a', 'insert'),
      created('public.b', 'delete'),
    ]);
    const text = await metrics.registry.metrics();
    assert.equal(sample(text, 'batch_operations_created_total{database="main",target="public.a",type="insert"}'), 2);
    assert.equal(sample(text, 'batch_operations_created_total{database="main",target="public.b",type="delete"}'), 1);
    assert.doesNotMatch(text, /client="/, 'no client label: a listener is not told who created them');
  });

  it('count settled operations by status and target, and observe chunk duration and size', async () => {
    const metrics = new Metrics(stats(), NO_DATABASES);
    const listener = new MetricsChunkListener(metrics);
    const a = operation('1', 'public.a', 'booking');
    const b = operation('2', 'public.a', 'billing');
    const c = operation('3', 'public.a', 'booking');
    const summary: ChunkSummary = {
      chunkId: '9',
      read: 3,
      outcomes: [outcome(a, 'COMPLETED'), outcome(b, 'COMPLETED'), outcome(c, 'FAILED')],
      startedAt: new Date(Date.now() - 200),
    };
    listener.afterChunk(summary);
    listener.afterChunkError();
    const text = await metrics.registry.metrics();
    assert.equal(
      sample(text, 'batch_operations_settled_total{status="COMPLETED",database="main",target="public.a"}'),
      2,
    );
    assert.equal(sample(text, 'batch_operations_settled_total{status="FAILED",database="main",target="public.a"}'), 1);
    assert.doesNotMatch(text, /booking|billing/);
    assert.equal(sample(text, 'batch_chunk_operations_sum'), 3);
    assert.equal(sample(text, 'batch_chunk_operations_count'), 1);
    assert.equal(sample(text, 'batch_chunk_duration_seconds_count'), 1);
    assert.ok(sample(text, 'batch_chunk_duration_seconds_sum')! >= 0.2);
    assert.equal(sample(text, 'batch_chunk_duration_seconds_bucket{le="0.1"}'), 0);
    assert.equal(sample(text, 'batch_chunk_failures_total'), 1);
  });

  it('count statements and their fallbacks, and time them', async () => {
    const metrics = new Metrics(stats(), NO_DATABASES);
    const listener = new MetricsChunkListener(metrics);
    const plan: StatementPlan = {
      table: targetTable('public.a', []),
      type: 'update',
      columns: ['x'],
      keyColumns: ['id'],
      operations: [],
    };
    listener.onStatement(plan, false, 4);
    listener.onStatement(plan, true, 30);
    listener.onStatement({ ...plan, type: 'insert', keyColumns: null }, false, 2);
    const text = await metrics.registry.metrics();
    assert.equal(sample(text, 'batch_statements_total{database="main",target="public.a",type="update"}'), 2);
    assert.equal(sample(text, 'batch_statements_total{database="main",target="public.a",type="insert"}'), 1);
    assert.equal(sample(text, 'batch_statement_fallbacks_total{database="main",target="public.a",type="update"}'), 1);
    assert.equal(
      sample(text, 'batch_statement_fallbacks_total{database="main",target="public.a",type="insert"}'),
      undefined,
    );
    assert.equal(sample(text, 'batch_statement_duration_seconds_sum{type="update",fallback="true"}'), 0.03);
    assert.equal(sample(text, 'batch_statement_duration_seconds_count{type="update",fallback="false"}'), 1);
  });
});
