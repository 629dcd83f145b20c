import { Injectable } from '@nestjs/common';
import { hostname } from 'node:os';
import type { PoolClient } from 'pg';
import { AppConfig } from '../config/app-config';
import {
  BackOffPolicy,
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
import { EngineError, isConnectionError, operationError, publicReason } from './database-error';

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
    super(`skip limit ${limit} exceeded; last error: ${publicReason(cause)}`, { cause });
  }
}

const WORKER = `${hostname()}:${process.pid}`;
/** Deferred constraints are checked per statement, so that their violations fail one operation, not the commit. */
const DEFERRED_CONSTRAINTS_PER_STATEMENT = 'SET CONSTRAINTS ALL IMMEDIATE';

/**
 * One chunk, one transaction: claim, plan, write each statement (falling back to item-by-item under
 * savepoints when one fails), then record outcomes, the execution with its steps, and the outbox rows.
 * A crash anywhere rolls all of it back and the operations are simply claimed again.
 *
 * A chunk that fails as a whole is recorded as a FAILED execution in a transaction of its own. When the database
 * could not be reached, that is all (the poller waits and tries again); otherwise each of its operations counts
 * the failure, its targets are held back for a while (the back-off policy) while retries are left, and they are
 * claimed in ever smaller chunks after that (the retry policy), until an operation alone in its chunk that fails
 * again ends FAILED with the error, and the others are applied.
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
    private readonly backOffPolicy: BackOffPolicy,
    private readonly listeners: ChunkListeners,
  ) {}

  /** Runs one chunk; throws only when the database could not be reached (or the claim itself failed). */
  async execute(): Promise<ChunkResult> {
    const startedAt = new Date();
    let chunk: ClaimedOperation[] = [];
    try {
      // Every round trip counts: under load each wait for a reply also waits its turn in the event loop.
      const summary = await this.db.transaction(async (tx) => {
        chunk = await this.reader.read(tx, this.config.poll.limit);
        if (chunk.length === 0) return null;
        const plan = await this.processor.process(chunk);
        const outcomes: OperationOutcome[] = [...plan.filtered];
        const steps: StepRecord[] = [];
        for (const statement of plan.statements) steps.push(await this.runStatement(tx, statement, outcomes));
        const executionId = await this.record(tx, startedAt, chunk, plan.filtered.length, steps, outcomes);
        return { executionId, read: chunk.length, outcomes, startedAt };
      }, DEFERRED_CONSTRAINTS_PER_STATEMENT);
      if (!summary) return { executionId: null, read: 0 };
      for (const listener of this.listeners.all) listener.afterChunk?.(summary);
      return { executionId: summary.executionId, read: summary.read };
    } catch (error) {
      for (const listener of this.listeners.all) listener.afterChunkError?.(error, chunk.length);
      if (chunk.length === 0 || isConnectionError(error)) {
        if (chunk.length > 0) await this.recordFailure(startedAt, chunk, error, 'to be retried').catch(() => undefined);
        throw error;
      }
      return this.failChunk(startedAt, chunk, error);
    }
  }

  /** A chunk that failed as a whole, though the database answers: counted against its operations (see ChunkStep). */
  private async failChunk(startedAt: Date, chunk: ClaimedOperation[], error: unknown): Promise<ChunkResult> {
    const failures = chunk.reduce((most, op) => Math.max(most, op.failures), 0) + 1;
    if (this.retryPolicy.givesUp(chunk.length, failures)) return this.giveUp(startedAt, chunk[0], failures, error);
    const retries = this.config.poll.retryLimit;
    const holdMs = failures <= retries ? this.backOffPolicy.delayMs(failures) : 0;
    const failed = new Map<string, number>(); // operations of each target in the chunk
    for (const { target } of chunk) failed.set(target, (failed.get(target) ?? 0) + 1);
    const sizes = new Map(
      [...failed].map(([target, count]) => [target, this.retryPolicy.nextChunkSize(count, failures)]),
    );
    const next =
      failures <= retries
        ? `to be retried in ${holdMs} ms`
        : `to be claimed in chunks of ${[...new Set(sizes.values())].join(', ')}`;
    await this.db.query(
      `WITH counted AS (UPDATE batch.pending SET failures = failures + 1 WHERE id = ANY($1::bigint[]))
       INSERT INTO batch.holds (target, until, chunk_size) SELECT target, now() + $4 * interval '1 millisecond', size FROM unnest($2::text[], $3::int[]) AS h(target, size)
       ON CONFLICT (target) DO UPDATE SET until = EXCLUDED.until, chunk_size = EXCLUDED.chunk_size`,
      [chunk.map((op) => op.id), [...sizes.keys()], [...sizes.values()], holdMs],
    );
    return {
      executionId: await this.recordFailure(startedAt, chunk, error, `failure ${failures}, ${next}`),
      read: chunk.length,
    };
  }

  /** An operation alone in a chunk that failed as a whole once more: it cannot be applied, and ends FAILED. */
  private async giveUp(
    startedAt: Date,
    operation: ClaimedOperation,
    failures: number,
    error: unknown,
  ): Promise<ChunkResult> {
    const outcome: OperationOutcome = { operation, status: 'FAILED', rowsAffected: null, error: operationError(error) };
    const step: StepRecord = {
      ...emptyCounts(),
      name: `gave up ${operation.type} ${operation.target}`,
      target: operation.target,
      type: operation.type,
      status: 'FAILED',
      exitMessage: `its chunk failed as a whole ${failures} times: ${publicReason(error)}`,
      startedAt,
      endedAt: new Date(),
      readCount: 1,
      writeSkipCount: 1,
      rollbackCount: failures,
    };
    const summary = await this.db.transaction(async (tx) => {
      // Found: the target's other operations go back to whole chunks.
      const [{ claimed }] = (
        await tx.query<{ claimed: boolean }>(
          `WITH claimed AS (DELETE FROM batch.pending WHERE id = $1 RETURNING id), released AS (DELETE FROM batch.holds WHERE target = $2)
           SELECT EXISTS (SELECT 1 FROM claimed) AS claimed`,
          [operation.id, operation.target],
        )
      ).rows;
      if (!claimed) return null; // cancelled meanwhile
      const executionId = await this.record(tx, startedAt, [operation], 0, [step], [outcome]);
      return { executionId, read: 1, outcomes: [outcome], startedAt };
    });
    if (!summary) return { executionId: null, read: 1 };
    for (const listener of this.listeners.all) {
      listener.onSkip?.(outcome);
      listener.afterChunk?.(summary);
    }
    return { executionId: summary.executionId, read: 1 };
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
    for (const listener of this.listeners.all)
      listener.onStatement?.(plan, step.rollbackCount > 0, step.endedAt.getTime() - step.startedAt.getTime());
    return step;
  }

  private async runOne(
    tx: PoolClient,
    plan: StatementPlan,
    operation: ClaimedOperation,
    skipped: number,
  ): Promise<OperationOutcome> {
    await tx.query('SAVEPOINT item');
    try {
      const [rows] = await this.writer.write(tx, { ...plan, operations: [operation] });
      await tx.query('RELEASE SAVEPOINT item');
      return completed(operation, rows);
    } catch (error) {
      if (this.retryPolicy.isRetryable(error)) throw error;
      if (!this.skipPolicy.shouldSkip(error, skipped))
        throw new SkipLimitExceededError(this.config.poll.skipLimit, error);
      await tx.query('ROLLBACK TO SAVEPOINT item');
      const outcome: OperationOutcome = {
        operation,
        status: 'FAILED',
        rowsAffected: null,
        error: operationError(error),
      };
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

  /** A chunk that failed as a whole: visible in /api/executions (to admins) while its operations wait. */
  private async recordFailure(
    startedAt: Date,
    chunk: ClaimedOperation[],
    error: unknown,
    next: string,
  ): Promise<string> {
    const [{ id }] = await this.db.query<{ id: string }>(
      `INSERT INTO batch.executions (status, exit_message, worker, read_count, rollback_count, started_at, ended_at)
       VALUES ('FAILED', $1, $2, $3, 1, $4, clock_timestamp()) RETURNING id`,
      [`rolled back (${next}): ${publicReason(error)}`, WORKER, chunk.length, startedAt],
    );
    return id;
  }
}

/** One notification per client, its operations in order of id. */
export function settledEvents(
  executionId: string,
  settledAt: Date,
  outcomes: OperationOutcome[],
): IOperationsSettledEvent[] {
  const byClient = new Map<string, IOperationsSettledEvent>();
  for (const { operation, status, rowsAffected, error } of [...outcomes].sort((a, b) =>
    compareIds(a.operation.id, b.operation.id),
  )) {
    let event = byClient.get(operation.clientName);
    if (!event) {
      event = {
        type: 'operations.settled',
        client: operation.clientName,
        executionId,
        settledAt: settledAt.toISOString(),
        operations: [],
      };
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
const COUNTERS = [
  'readCount',
  'writeCount',
  'filterCount',
  'readSkipCount',
  'processSkipCount',
  'writeSkipCount',
  'commitCount',
  'rollbackCount',
] as const;

export function emptyCounts(): StepCounts {
  return Object.fromEntries(COUNTERS.map((counter) => [counter, 0])) as unknown as StepCounts;
}
