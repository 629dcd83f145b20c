import { Injectable } from '@nestjs/common';
import { hostname } from 'node:os';
import type { PoolClient } from 'pg';
import { AppConfig } from '../config/app-config';
import {
  ChunkListeners,
  ClaimedOperation,
  ItemProcessor,
  ItemReader,
  ItemWriter,
  OperationOutcome,
  RetryPolicy,
  SkipPolicy,
  StatementPlan,
  StepCounts,
} from '../interfaces/chunk.interfaces';
import { IOperationsSettledEvent, SETTLED_ROUTING_KEY_PREFIX } from '../interfaces/operation.interfaces';
import { Database } from './database';
import { EngineError, publicReason } from './database-error';

export interface ChunkResult {
  executionId: string | null;
  read: number;
}

interface StepRecord extends StepCounts {
  name: string;
  target: string;
  type: string;
  status: 'COMPLETED' | 'FAILED';
  exitMessage: string | null;
  startedAt: Date;
  endedAt: Date;
}

/** More operations failed than BATCH_SKIP_LIMIT allows: the execution fails and is rolled back. */
export class SkipLimitExceededError extends EngineError {
  constructor(limit: number | null, cause: unknown) {
    super(`skip limit ${limit} exceeded; last error: ${publicReason(cause)}`);
  }
}

const WORKER = `${hostname()}:${process.pid}`;
/** The database quotes values in its messages (`invalid input syntax for type inet: "…"`): kept to this length. */
const MAX_ERROR_MESSAGE = 2000;
/** Deferred constraints are checked per statement, so that their violations fail one operation, not the commit. */
const DEFERRED_CONSTRAINTS_PER_STATEMENT = 'SET CONSTRAINTS ALL IMMEDIATE';

/**
 * One chunk, one transaction: claim, plan, write each statement (falling back to item-by-item under
 * savepoints when one fails), then record outcomes, the execution with its steps, and the outbox rows.
 * A crash anywhere rolls all of it back and the operations are simply claimed again. A chunk that fails as a
 * whole (a transient error, the skip limit) is recorded as a FAILED execution in a transaction of its own.
 */
@Injectable()
export class ChunkStep {
  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
    private readonly reader: ItemReader,
    private readonly processor: ItemProcessor,
    private readonly writer: ItemWriter,
    private readonly skipPolicy: SkipPolicy,
    private readonly retryPolicy: RetryPolicy,
    private readonly listeners: ChunkListeners,
  ) {}

  async execute(): Promise<ChunkResult> {
    const startedAt = new Date();
    let read = 0;
    try {
      // Every round trip counts: under load each wait for a reply also waits its turn in the event loop.
      const summary = await this.db.transaction(async (tx) => {
        const chunk = await this.reader.read(tx, this.config.poll.limit);
        read = chunk.length;
        if (chunk.length === 0) return null;
        const plan = await this.processor.process(chunk);
        const outcomes: OperationOutcome[] = [...plan.filtered];
        const steps: StepRecord[] = [];
        for (const statement of plan.statements) steps.push(await this.runStatement(tx, statement, outcomes));
        const executionId = await this.record(tx, startedAt, chunk, plan.filtered.length, steps, outcomes);
        return { executionId, read, outcomes, startedAt };
      }, DEFERRED_CONSTRAINTS_PER_STATEMENT);
      if (!summary) return { executionId: null, read: 0 };
      for (const listener of this.listeners.all) listener.afterChunk?.(summary);
      return { executionId: summary.executionId, read };
    } catch (error) {
      if (read > 0) await this.recordFailure(startedAt, read, error).catch(() => undefined);
      for (const listener of this.listeners.all) listener.afterChunkError?.(error, read);
      throw error;
    }
  }

  /** One statement for the whole plan; when it fails, one savepoint per operation, in order. */
  private async runStatement(tx: PoolClient, plan: StatementPlan, outcomes: OperationOutcome[]): Promise<StepRecord> {
    const step: StepRecord = {
      ...emptyCounts(),
      name: `${plan.type} ${plan.target} (${plan.columns.join(', ')})${plan.keyColumns ? ` by (${plan.keyColumns.join(', ')})` : ''}`,
      target: plan.target,
      type: plan.type,
      status: 'COMPLETED',
      exitMessage: null,
      startedAt: new Date(),
      endedAt: new Date(),
      readCount: plan.operations.length,
      commitCount: 1,
    };
    await tx.query('SAVEPOINT statement');
    try {
      const rows = await this.writer.write(tx, plan);
      await tx.query('RELEASE SAVEPOINT statement');
      plan.operations.forEach((operation, i) => outcomes.push(completed(operation, rows[i])));
      step.writeCount = plan.operations.length;
    } catch (error) {
      if (this.retryPolicy.isRetryable(error)) throw error;
      await tx.query('ROLLBACK TO SAVEPOINT statement');
      step.rollbackCount += 1;
      step.exitMessage = `statement failed with ${publicReason(error)}; applied item by item`;
      const skippedBefore = countSkips(outcomes);
      for (const operation of plan.operations) {
        const outcome = await this.runOne(tx, plan, operation, skippedBefore + step.writeSkipCount);
        outcomes.push(outcome);
        if (outcome.status === 'COMPLETED') step.writeCount += 1;
        else step.writeSkipCount += 1;
      }
    }
    step.endedAt = new Date();
    for (const listener of this.listeners.all) listener.onStatement?.(plan, step.rollbackCount > 0, step.endedAt.getTime() - step.startedAt.getTime());
    return step;
  }

  private async runOne(tx: PoolClient, plan: StatementPlan, operation: ClaimedOperation, skipped: number): Promise<OperationOutcome> {
    await tx.query('SAVEPOINT item');
    try {
      const [rows] = await this.writer.write(tx, { ...plan, operations: [operation] });
      await tx.query('RELEASE SAVEPOINT item');
      return completed(operation, rows);
    } catch (error) {
      if (this.retryPolicy.isRetryable(error)) throw error;
      if (!this.skipPolicy.shouldSkip(error, skipped)) throw new SkipLimitExceededError(this.config.poll.skipLimit, error);
      await tx.query('ROLLBACK TO SAVEPOINT item');
      const e = error as { code: string; message: string };
      const outcome: OperationOutcome = { operation, status: 'FAILED', rowsAffected: null, error: { code: e.code, message: e.message.slice(0, MAX_ERROR_MESSAGE) } };
      for (const listener of this.listeners.all) listener.onSkip?.(outcome);
      return outcome;
    }
  }

  /** The job repository and the outbox, in the chunk's transaction. */
  private async record(
    tx: PoolClient,
    startedAt: Date,
    chunk: ClaimedOperation[],
    filtered: number,
    steps: StepRecord[],
    outcomes: OperationOutcome[],
  ): Promise<string> {
    const totals = emptyCounts();
    for (const step of steps) for (const counter of COUNTERS) totals[counter] += step[counter];
    totals.readCount = chunk.length;
    totals.processSkipCount = filtered;
    totals.commitCount = 1;
    const skips = countSkips(outcomes);
    const exitMessage = skips > 0 ? `${skips} of ${chunk.length} operations failed` : null;
    const {
      rows: [{ id: executionId, ended_at: endedAt }],
    } = await tx.query<{ id: string; ended_at: Date }>(
      `INSERT INTO batch.executions (status, exit_message, worker, read_count, write_count, filter_count, read_skip_count,
                                     process_skip_count, write_skip_count, commit_count, rollback_count, started_at, ended_at)
       VALUES ('COMPLETED', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, clock_timestamp()) RETURNING id, ended_at`,
      [exitMessage, WORKER, ...COUNTERS.map((counter) => totals[counter]), startedAt],
    );
    const events = settledEvents(executionId, endedAt, outcomes);
    // Steps, outcomes, the clients settled for and the outbox in one statement (data-modifying CTEs all run, whether
    // or not they are read). Outcomes and notifications travel as JSON texts, which node-postgres does not escape
    // element by element as it does arrays.
    await tx.query(
      `WITH steps AS (
         INSERT INTO batch.execution_steps (execution_id, name, target, type, status, exit_message, read_count, write_count, filter_count,
                                            read_skip_count, process_skip_count, write_skip_count, commit_count, rollback_count, started_at, ended_at)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::int[], $9::int[], $10::int[],
                                  $11::int[], $12::int[], $13::int[], $14::int[], $15::timestamptz[], $16::timestamptz[])),
       settled AS (
         INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, rows_affected, error_code, error_message, execution_id, settled_at)
         SELECT v.*, $1, $17 FROM json_to_recordset($18::json)
           AS v(operation_id bigint, client_id bigint, target text, status text, attempts int, rows_affected int, error_code text, error_message text)),
       clients AS (INSERT INTO batch.execution_clients (client_id, execution_id) SELECT unnest($21::bigint[]), $1)
       INSERT INTO batch.outbox (routing_key, payload) SELECT $19 || (e->>'client'), e FROM json_array_elements($20::json) AS e`,
      [
        executionId,
        steps.map((s) => s.name),
        steps.map((s) => s.target),
        steps.map((s) => s.type),
        steps.map((s) => s.status),
        steps.map((s) => s.exitMessage),
        ...COUNTERS.map((counter) => steps.map((s) => s[counter])),
        steps.map((s) => s.startedAt),
        steps.map((s) => s.endedAt),
        endedAt,
        JSON.stringify(
          outcomes.map(({ operation, status, rowsAffected, error }) => ({
            operation_id: operation.id,
            client_id: operation.clientId,
            target: operation.target,
            status,
            attempts: operation.attempts + 1,
            rows_affected: rowsAffected,
            error_code: error?.code ?? null,
            error_message: error?.message ?? null,
          })),
        ),
        SETTLED_ROUTING_KEY_PREFIX,
        JSON.stringify(events),
        [...new Set(outcomes.map((o) => o.operation.clientId))],
      ],
    );
    return executionId;
  }

  /** A chunk that failed as a whole: visible in /api/executions while its operations wait to be retried. */
  private async recordFailure(startedAt: Date, read: number, error: unknown): Promise<void> {
    await this.db.query(
      `INSERT INTO batch.executions (status, exit_message, worker, read_count, rollback_count, started_at, ended_at)
       VALUES ('FAILED', $1, $2, $3, 1, $4, clock_timestamp())`,
      [`rolled back, to be retried: ${publicReason(error)}`, WORKER, read, startedAt],
    );
  }
}

/** One notification per client, its operations in order of id. */
export function settledEvents(executionId: string, settledAt: Date, outcomes: OperationOutcome[]): IOperationsSettledEvent[] {
  const byClient = new Map<string, IOperationsSettledEvent>();
  for (const { operation, status, rowsAffected, error } of [...outcomes].sort((a, b) => compareIds(a.operation.id, b.operation.id))) {
    let event = byClient.get(operation.clientName);
    if (!event) {
      event = { type: 'operations.settled', client: operation.clientName, executionId, settledAt: settledAt.toISOString(), operations: [] };
      byClient.set(operation.clientName, event);
    }
    event.operations.push({
      id: operation.id,
      status,
      rowsAffected,
      error,
      target: operation.target,
      type: operation.type,
      idempotencyKey: operation.idempotencyKey,
      label: operation.label,
    });
  }
  return [...byClient.values()];
}

function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function completed(operation: ClaimedOperation, rowsAffected: number): OperationOutcome {
  return { operation, status: 'COMPLETED', rowsAffected, error: null };
}

function countSkips(outcomes: OperationOutcome[]): number {
  return outcomes.reduce((n, o) => n + (o.status === 'FAILED' ? 1 : 0), 0);
}

/** The counters in the order of their columns in batch.executions and batch.execution_steps. */
const COUNTERS = ['readCount', 'writeCount', 'filterCount', 'readSkipCount', 'processSkipCount', 'writeSkipCount', 'commitCount', 'rollbackCount'] as const;

export function emptyCounts(): StepCounts {
  return Object.fromEntries(COUNTERS.map((counter) => [counter, 0])) as unknown as StepCounts;
}
