import { Injectable, Logger } from '@nestjs/common';
import { databaseOf, NamedDatabases } from '../storage/named-databases';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ChunkListener, ChunkSummary, StatementPlan } from '../../interfaces/chunk.interfaces';
import { IngestListener, StoredOperation } from '../../interfaces/ingest.interfaces';
import { OPERATION_STATUSES } from '../../interfaces/operation.interfaces';
import { QueueStats, StatsService } from '../queue-views/stats.service';

/** How long one reading of the queue serves scrapes, so that a scrape storm cannot load the database. */
export const QUEUE_STATS_TTL_MS = 1000;

/** What the queue gauges show while the database cannot be read: NaN, neither a stale value nor a false 0. */
const UNREADABLE_QUEUE: QueueStats = {
  byStatus: { PENDING: NaN, COMPLETED: NaN, FAILED: NaN, CANCELLED: NaN },
  byTarget: [],
  oldestPendingAgeSeconds: NaN,
  throughput: [],
  outboxBacklog: NaN,
};

const SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const CHUNK_SIZES = [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000];

/**
 * `load`, shared: calls while one is in flight get the same promise, and its result (value or error) serves
 * further calls for `ttlMs` after it settled.
 */
export function sharedFor<T>(ttlMs: number, load: () => Promise<T>, now: () => number = Date.now): () => Promise<T> {
  let current: Promise<T> | null = null;
  let settledAt: number | null = null;
  return () => {
    if (current && (settledAt === null || now() - settledAt < ttlMs)) return current;
    settledAt = null;
    const loading = load();
    current = loading;
    const settle = () => {
      if (current === loading) settledAt = now();
    };
    loading.then(settle, settle);
    return loading;
  };
}

/**
 * The service's Prometheus metrics, in a registry of this app's own (several apps in one process do not clash).
 * Counters and histograms are fed by the listeners below and by RpcServer and httpRequestMetrics; the
 * queue gauges are read from the database when scraped, at most once per QUEUE_STATS_TTL_MS.
 */
@Injectable()
export class Metrics {
  private readonly logger = new Logger('Metrics');
  readonly registry = new Registry();

  readonly operationsCreated = new Counter({
    name: 'batch_operations_created_total',
    help: 'Operations stored by creates (duplicates of earlier creates are not counted)',
    labelNames: ['database', 'target', 'type'] as const,
    registers: [this.registry],
  });
  readonly operationsSettled = new Counter({
    name: 'batch_operations_settled_total',
    help: "Operations applied by this process's chunks, by outcome (COMPLETED or FAILED)",
    labelNames: ['status', 'database', 'target'] as const,
    registers: [this.registry],
  });
  readonly chunkDuration = new Histogram({
    name: 'batch_chunk_duration_seconds',
    help: 'Duration of committed chunk transactions, from claim to commit',
    buckets: SECONDS,
    registers: [this.registry],
  });
  readonly chunkSize = new Histogram({
    name: 'batch_chunk_operations',
    help: 'Operations claimed by each committed chunk',
    buckets: CHUNK_SIZES,
    registers: [this.registry],
  });
  readonly chunkFailures = new Counter({
    name: 'batch_chunk_failures_total',
    help: 'Chunks rolled back as a whole, to be retried (transient errors, skip limit, claim failures)',
    registers: [this.registry],
  });
  readonly statements = new Counter({
    name: 'batch_statements_total',
    help: 'Set-based statements executed by chunks',
    labelNames: ['database', 'target', 'type'] as const,
    registers: [this.registry],
  });
  readonly statementFallbacks = new Counter({
    name: 'batch_statement_fallbacks_total',
    help: 'Statements that failed and whose operations were then applied one by one',
    labelNames: ['database', 'target', 'type'] as const,
    registers: [this.registry],
  });
  readonly statementDuration = new Histogram({
    name: 'batch_statement_duration_seconds',
    help: 'Duration of each statement, including its item-by-item fallback',
    labelNames: ['type', 'fallback'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });
  readonly rpcDuration = new Histogram({
    name: 'batch_rpc_request_duration_seconds',
    help: 'Duration of RPC requests, by pattern and outcome (OK or the error code)',
    labelNames: ['pattern', 'outcome'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });
  readonly rpcDeadLettered = new Counter({
    name: 'batch_rpc_dead_lettered_total',
    help: 'RPC messages copied to the dead-letter queue, by pattern (unreadable when none is known) and error code',
    labelNames: ['pattern', 'code'] as const,
    registers: [this.registry],
  });
  readonly jobRows = new Counter({
    name: 'batch_job_rows_total',
    help: "Items (rows) written by this process's job chunks, by job",
    labelNames: ['job'] as const,
    registers: [this.registry],
  });
  readonly jobLeaseLosses = new Counter({
    name: 'batch_job_lease_losses_total',
    help: 'Job executions and partitions whose worker stopped renewing its lease, seen by this process, by job',
    labelNames: ['job'] as const,
    registers: [this.registry],
  });
  private readonly relayHeapBytes = new Gauge({
    name: 'batch_outbox_relay_heap_bytes',
    help: "The outbox relay thread's V8 heap, used and total (the nodejs_heap_* metrics are the main thread's alone)",
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'batch_http_request_duration_seconds',
    help: 'Duration of HTTP requests, by method, route and status code',
    labelNames: ['method', 'route', 'code'] as const,
    buckets: SECONDS,
    registers: [this.registry],
  });

  constructor(stats: StatsService, databases: NamedDatabases) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'batch_database_up',
      help: 'Whether each database of BATCH_DATABASES answered its last check (1) or not (0), by database',
      labelNames: ['database'],
      registers: [this.registry],
      collect(this: Gauge<string>) {
        for (const { name, up } of databases.all()) this.set({ database: name }, up ? 1 : 0);
      },
    });
    const queue = sharedFor(QUEUE_STATS_TTL_MS, () => stats.queue(null));
    const logger = this.logger;
    const fromQueue = (read: (gauge: Gauge<string>, stats: QueueStats) => void) =>
      async function collect(this: Gauge<string>): Promise<void> {
        try {
          read(this, await queue());
        } catch (error) {
          read(this, UNREADABLE_QUEUE);
          logger.debug(`queue metrics unavailable: ${(error as Error).message}`);
        }
      };
    new Gauge({
      name: 'batch_queue_operations',
      help: 'Operations in the queue table by status (all clients)',
      labelNames: ['status'],
      registers: [this.registry],
      collect: fromQueue((gauge, { byStatus }) =>
        OPERATION_STATUSES.forEach((status) => gauge.set({ status }, byStatus[status])),
      ),
    });
    new Gauge({
      name: 'batch_queue_oldest_pending_age_seconds',
      help: 'Age of the oldest PENDING operation that is due (0 when none)',
      registers: [this.registry],
      collect: fromQueue((gauge, { oldestPendingAgeSeconds }) => gauge.set(oldestPendingAgeSeconds)),
    });
    new Gauge({
      name: 'batch_outbox_backlog',
      help: 'Notifications written but not yet confirmed by the broker',
      registers: [this.registry],
      collect: fromQueue((gauge, { outboxBacklog }) => gauge.set(outboxBacklog)),
    });
  }

  /** The relay thread's heap as it last reported it. */
  relayHeap({ used, total }: { used: number; total: number }): void {
    this.relayHeapBytes.set({ kind: 'used' }, used);
    this.relayHeapBytes.set({ kind: 'total' }, total);
  }
}

/** A target's labels: its database (`main`, the service's own, or a name of BATCH_DATABASES) and its name. */
function where(target: string): { database: string; target: string } {
  return { database: databaseOf(target).database, target };
}

/** Counts operations as creates store them. */
@Injectable()
export class MetricsIngestListener extends IngestListener {
  constructor(private readonly metrics: Metrics) {
    super();
  }

  /** Counted by target and type first: a counter's labels checked and hashed per operation cost a bulk create ~5 %. */
  afterCreate(operations: readonly StoredOperation[]): void {
    const created = new Map<string, Map<string, number>>(); // by target, then type
    for (const { target, type } of operations) {
      let byType = created.get(target);
      if (!byType) created.set(target, (byType = new Map()));
      byType.set(type, (byType.get(type) ?? 0) + 1);
    }
    for (const [target, byType] of created)
      for (const [type, count] of byType) this.metrics.operationsCreated.inc({ ...where(target), type }, count);
  }
}

/** Chunk, statement and outcome metrics. */
@Injectable()
export class MetricsChunkListener extends ChunkListener {
  constructor(private readonly metrics: Metrics) {
    super();
  }

  afterChunk({ read, outcomes, startedAt }: ChunkSummary): void {
    this.metrics.chunkDuration.observe((Date.now() - startedAt.getTime()) / 1000);
    this.metrics.chunkSize.observe(read);
    const settled = new Map<string, Map<string, number>>(); // by status, then target
    for (const { operation, status } of outcomes) {
      let byTarget = settled.get(status);
      if (!byTarget) settled.set(status, (byTarget = new Map()));
      byTarget.set(operation.target, (byTarget.get(operation.target) ?? 0) + operation.count);
    }
    for (const [status, byTarget] of settled)
      for (const [target, count] of byTarget) this.metrics.operationsSettled.inc({ status, ...where(target) }, count);
  }

  afterChunkError(): void {
    this.metrics.chunkFailures.inc();
  }

  onStatement({ table: { name: target }, type }: StatementPlan, fallback: boolean, durationMs: number): void {
    this.metrics.statements.inc({ ...where(target), type });
    if (fallback) this.metrics.statementFallbacks.inc({ ...where(target), type });
    this.metrics.statementDuration.observe({ type, fallback: String(fallback) }, durationMs / 1000);
  }
}
