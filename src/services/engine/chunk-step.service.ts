import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { AppConfig } from '../../config/app-config';
import {
  ChunkListeners,
  ChunkPlan,
  ClaimedOperation,
  Grants,
  OperationOutcome,
  PartOutcome,
  StatementPlan,
} from '../../interfaces/chunk.interfaces';
import { Database } from '../storage/database';
import { ClientService } from '../access/client.service';
import {
  EngineError,
  isConcurrencyConflict,
  isConnectionError,
  isLockTimeout,
  operationError,
  publicReason,
} from '../storage/database-error';
import { emptyCounts } from '../step-counts';
import { ChunkRepository, StepRecord } from './chunk-repository';
import { backOffMs } from '../worker-loop';
import { shapeType } from '../ingest/row-identity';
import { operationCount } from '../storage/id-runs';
import { foldRounds } from './statement-planner';
import { ChunkClaimer } from './chunk-claimer.service';
import { ChunkPlanner } from './chunk-planner.service';
import { ChunkRetryPolicy, DataErrorSkipPolicy, ExponentialBackOffPolicy } from './chunk-policies';
import { missedOutcomes, StatementApplier } from './statement-applier.service';
import { PreparedChunk, PreparedChunks } from './prepared-chunks';
import {
  AppliedChunk,
  appliedFromLedger,
  copiesAsInserts,
  copyInserts,
  ledgerOutcomes,
  planElsewhere,
  sameMajorVersion,
  stageOperations,
} from './other-database';
import { databaseOf, MAIN, NamedDatabases } from '../storage/named-databases';
import { LEDGER_TRANSACTION, LedgerUnavailable, TargetLedgers } from '../storage/target-ledger';
import { transactionOn } from '../storage/pg-client';
import { lockTargets } from '../storage/advisory-locks';
import { killPoint } from '../kill-points';
import type { DatabaseLanes } from './database-lanes';

export interface ChunkResult {
  chunkId: string | null;
  read: number;
  /** The chunk took as much as it could (its count limit, or half its byte budget): there may be more at once. */
  full: boolean;
}

/** More operations failed than BATCH_SKIP_LIMIT allows: the chunk fails and is rolled back. */
export class FailureLimitExceeded extends EngineError {
  constructor(limit: number | null, cause: unknown) {
    super(`skip limit ${limit} exceeded; last error: ${publicReason(cause)}`, { cause });
  }
}

/** How often a worker looks for chunks for other databases left between their commits. */
const UNFINISHED_CHECK_MS = 1000;

/** Deferred constraints are checked per statement, so that their violations fail one operation, not the commit. */
const DEFERRED_CONSTRAINTS_PER_STATEMENT = 'SET CONSTRAINTS ALL IMMEDIATE';

/**
 * One chunk, one transaction: claim (ChunkClaimer), plan (ChunkPlanner), apply each statement (StatementApplier;
 * applied in parts down to the failing operations when one fails, the skip policy deciding), then record it all
 * (ChunkRepository).
 * A crash anywhere rolls all of it back and the operations are simply claimed again.
 *
 * A chunk that fails as a whole is recorded as a FAILED chunk in a transaction of its own. When the database
 * could not be reached, that is all (the poller waits and tries again); otherwise each of its operations counts
 * the failure, its targets are held back for a while (the back-off policy) while retries are left, and they are
 * claimed in ever smaller chunks after that (the retry policy), until an operation alone in its chunk that fails
 * again ends FAILED with the error, and the others are applied.
 */
@Injectable()
export class ChunkStep {
  private unfinishedCheckAt = 0;
  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
    private readonly claimer: ChunkClaimer,
    private readonly planner: ChunkPlanner,
    private readonly applier: StatementApplier,
    private readonly skipPolicy: DataErrorSkipPolicy,
    private readonly retryPolicy: ChunkRetryPolicy,
    private readonly backOffPolicy: ExponentialBackOffPolicy,
    private readonly chunkRepository: ChunkRepository,
    private readonly listeners: ChunkListeners,
    private readonly clients: ClientService,
    private readonly databases: NamedDatabases,
    private readonly preparedChunks: PreparedChunks,
    private readonly ledgers: TargetLedgers,
  ) {}

  /**
   * Runs a chunk of up to `limit` operations; throws only when the queue's database could not be reached (or the claim
   * failed). A chunk for another database is prepared here, and finished by finishElsewhere (in its lane, given
   * `lanes`: databases with a chunk in flight there are passed over); one whose worker stopped between its commits is
   * finished first, by whoever finds it.
   */
  async execute(limit = this.config.poll.limit, lanes?: DatabaseLanes): Promise<ChunkResult> {
    const startedAt = new Date();
    const unfinished = await this.unfinishedElsewhere(lanes?.busy() ?? []);
    if (unfinished) return this.finishElsewhereIn(lanes, unfinished, startedAt, limit);
    let chunk: ClaimedOperation[] = [];
    let held: HeldTarget[] = [];
    const prepared: { chunk?: PreparedChunk } = {};
    let summary;
    try {
      // Every round trip counts: under load each wait for a reply also waits its turn in the event loop.
      summary = await this.db.transaction(async (tx) => {
        chunk = await this.claimer.claim(tx, limit, lanes?.busy());
        if (chunk.length === 0) return null;
        const { database } = databaseOf(chunk[0].target);
        if (database !== MAIN) {
          prepared.chunk = await this.preparedChunks.prepare(tx, database, chunk);
          return null;
        }
        const applied = await this.applyPlan(tx, await this.planner.plan(chunk, await this.grants(tx, chunk)));
        held = applied.held;
        if (applied.outcomes.length === 0) return null; // every target held back
        const record = { startedAt, read: settledCount(applied.outcomes), ...applied };
        return { ...record, chunkId: await this.chunkRepository.recordChunk(tx, record) };
      }, DEFERRED_CONSTRAINTS_PER_STATEMENT);
    } catch (error) {
      const read = operationCount(chunk);
      for (const listener of this.listeners.all) listener.afterChunkError?.(error, read);
      if (read === 0 || isConnectionError(error)) {
        if (read > 0)
          await this.chunkRepository.recordFailure(startedAt, read, error, 'to be retried').catch(() => undefined);
        throw error;
      }
      return this.failChunk(startedAt, chunk, error);
    }
    if (prepared.chunk) return this.finishElsewhereIn(lanes, prepared.chunk, startedAt, limit);
    for (const { operations, error } of held) await this.failChunk(startedAt, operations, error);
    if (summary) for (const listener of this.listeners.all) listener.afterChunk?.(summary);
    return { chunkId: summary?.chunkId ?? null, read: operationCount(chunk), full: this.isFull(chunk, limit) };
  }

  /**
   * A chunk for another database whose worker stopped between its commits (its lease ran out), or whose database
   * failed it a while ago: now this worker's to finish. Looked for at most every UNFINISHED_CHECK_MS, in databases
   * that answer.
   */
  private async unfinishedElsewhere(busy: string[]): Promise<PreparedChunk | null> {
    const databases = this.databases.all().filter((d) => d.up !== false && !busy.includes(d.name));
    if (databases.length === 0 || Date.now() < this.unfinishedCheckAt) return null;
    const found = await this.preparedChunks.takeOver(databases.map((database) => database.name));
    this.unfinishedCheckAt = found ? 0 : Date.now() + UNFINISHED_CHECK_MS;
    return found;
  }

  /**
   * A prepared chunk finished now, or, given lanes (the poller's), in its database's lane while the caller goes on:
   * there may be more to claim at once, for the other databases.
   */
  private async finishElsewhereIn(
    lanes: DatabaseLanes | undefined,
    prepared: PreparedChunk,
    startedAt: Date,
    limit: number,
  ): Promise<ChunkResult> {
    if (!lanes) return this.finishElsewhere(prepared, startedAt, limit);
    lanes.start(prepared.database, this.finishElsewhere(prepared, startedAt, limit));
    return { chunkId: null, read: operationCount(prepared.chunk), full: true };
  }

  /**
   * A chunk prepared for another database, applied there and settled here. Where its database cannot be reached it
   * stays prepared (its targets not claimed, its operations pending) and is tried again after a back-off, by any
   * worker; where it fails as a whole, it is given up and its operations count the failure as a chunk here does.
   */
  private async finishElsewhere(prepared: PreparedChunk, startedAt: Date, limit: number): Promise<ChunkResult> {
    const { chunk } = prepared;
    const read = operationCount(chunk);
    let applied: AppliedChunk;
    try {
      applied = await this.whileHeld(prepared, () => this.applyElsewhere(prepared));
    } catch (error) {
      for (const listener of this.listeners.all) listener.afterChunkError?.(error, read);
      if (isConnectionError(error) || error instanceof LedgerUnavailable) {
        if (isConnectionError(error)) this.databases.markDown(prepared.database, error);
        const delayMs = backOffMs(this.config.poll.intervalMs, prepared.attempts + 1);
        await this.preparedChunks.postpone(prepared, delayMs);
        await this.chunkRepository
          .recordFailure(startedAt, read, error, `database ${prepared.database}: to be retried in ${delayMs} ms`)
          .catch(() => undefined);
        return { chunkId: null, read, full: false };
      }
      const result = await this.failChunk(startedAt, chunk, error);
      await this.preparedChunks.drop(prepared);
      return result;
    }
    killPoint('between-commits'); // applied there, not settled here: the fault test's point
    const summary = await this.db.transaction(async (tx) => {
      await lockTargets(tx, [...new Set(chunk.map((operation) => operation.target))]);
      if (!(await this.preparedChunks.drop(prepared, tx)) || applied.outcomes.length === 0) return null;
      const record = { startedAt, read: settledCount(applied.outcomes), ...applied };
      return { ...record, chunkId: await this.chunkRepository.recordChunk(tx, record) };
    });
    for (const { operations, error } of applied.held) await this.failChunk(startedAt, operations, error);
    if (summary) for (const listener of this.listeners.all) listener.afterChunk?.(summary);
    return { chunkId: summary?.chunkId ?? null, read, full: this.isFull(chunk, limit) };
  }

  /**
   * `work` on a prepared chunk, its lease renewed meanwhile however long it takes: past the lease, another worker would
   * take the chunk over and wait there for this one's transaction.
   */
  private async whileHeld<T>(prepared: PreparedChunk, work: () => Promise<T>): Promise<T> {
    const renew = () => void this.preparedChunks.renew(prepared).catch(() => undefined);
    const renewal = setInterval(renew, this.config.poll.leaseMs / 3);
    try {
      return await work();
    } finally {
      clearInterval(renewal);
    }
  }

  /**
   * The chunk applied in its database, in one transaction there with its ledger row: its operations staged from the
   * queue, its plan (grants as the queue reads them now) applied as here. Where the ledger already has the chunk (its
   * worker stopped after that commit), the outcomes are read from there, and nothing is applied again.
   */
  private async applyElsewhere({ id, database, chunk }: PreparedChunk): Promise<AppliedChunk> {
    await this.ledgers.ensure(database).catch((error: Error) => {
      throw isConnectionError(error) ? error : new LedgerUnavailable(database, error);
    });
    const plan = await this.db.transaction(async (tx) => this.planner.plan(chunk, await this.grants(tx, chunk)));
    const applied = await this.databases.using(database, async (connection) => {
      // the ledger's row taken first, without a lock timeout: a worker that took the chunk over waits there for the
      // one before, and settles from its row where it committed
      const inTransaction = (work: (tx: PoolClient) => Promise<AppliedChunk>) =>
        transactionOn(
          connection,
          async (tx) => {
            if (!(await this.ledgers.take(tx, id))) return null;
            const result = await work(tx);
            await this.ledgers.record(tx, id, ledgerOutcomes(result));
            return result;
          },
          `${LEDGER_TRANSACTION}; ${DEFERRED_CONSTRAINTS_PER_STATEMENT}`,
        );
      if (copiesAsInserts(plan)) {
        // refused (a value, a constraint, a lock): all of it undone, and applied as statements, which settle each one
        const copied = await inTransaction((tx) => this.copyPlan(tx, plan)).catch((error: unknown) => {
          if (isConnectionError(error)) throw error;
          return undefined;
        });
        if (copied !== undefined) return copied;
      }
      return inTransaction(async (tx) => {
        await stageOperations(this.db, tx, chunk);
        return this.applyPlan(tx, planElsewhere(plan));
      });
    });
    return applied ?? appliedFromLedger((await this.ledgers.find(database, id))!.outcomes, chunk);
  }

  /** A plan of inserts alone, each statement a `COPY` (copyInserts): every operation completed, one row each. */
  private async copyPlan(tx: PoolClient, plan: ChunkPlan): Promise<AppliedChunk> {
    const outcomes: OperationOutcome[] = [];
    const steps: StepRecord[] = [];
    await tx.query(`SET LOCAL lock_timeout = ${this.config.poll.lockTimeoutMs}`);
    let sameVersion: Promise<boolean> | undefined;
    for (const statement of plan.statements) {
      const step = stepOf(statement, new Date());
      const stage = await this.applier.stageToCopy(this.db.pool, statement);
      const typed = stage && { ...stage, sameMajorVersion: await (sameVersion ??= sameMajorVersion(this.db, tx)) };
      await copyInserts(this.db, tx, statement, typed);
      step.endedAt = new Date();
      step.writeCount = step.readCount;
      step.exitMessage = 'copied';
      steps.push(step);
      for (const operation of statement.operations) outcomes.push(completed(operation, 1));
      for (const listener of this.listeners.all)
        listener.onStatement?.(statement, false, step.endedAt.getTime() - step.startedAt.getTime());
    }
    return { outcomes, steps, held: [], filtered: 0 };
  }

  /** The chunk took as much as it could: there may be more at once. */
  private isFull(chunk: ClaimedOperation[], limit: number): boolean {
    const read = operationCount(chunk);
    const bytes = chunk.reduce((sum, op) => sum + op.bytes, 0);
    return read > 0 && (read >= limit || bytes * 2 >= this.config.poll.maxChunkBytes);
  }

  /** Who may write what, as `tx` reads the chunk's clients now (ClientService.grantsNow). */
  private grants(tx: PoolClient, chunk: ClaimedOperation[]): Promise<Grants> {
    return this.clients.grantsNow(tx, [...new Set(chunk.map((operation) => operation.clientId))]);
  }

  /**
   * A chunk's plan applied in `tx` (of the targets' database): each target under a savepoint of its own, the one
   * before released as the next is taken; the lock timeout holds from the first (the claim's waits are its own). The
   * outcomes, the planner's refusals first; the statements' steps; the targets held back (applyTarget).
   */
  private async applyPlan(tx: PoolClient, plan: ChunkPlan): Promise<AppliedChunk> {
    const outcomes: OperationOutcome[] = [...plan.filtered];
    const steps: StepRecord[] = [];
    const held: HeldTarget[] = [];
    let savepoint = `SET LOCAL lock_timeout = ${this.config.poll.lockTimeoutMs}; SAVEPOINT target`;
    for (const statements of byTarget(plan.statements)) {
      await tx.query(savepoint);
      savepoint = 'RELEASE SAVEPOINT target; SAVEPOINT target';
      const conflict = await this.applyTarget(tx, statements, outcomes, steps);
      if (conflict) held.push(conflict);
    }
    return { outcomes, steps, held, filtered: plan.filtered.length };
  }

  /**
   * A target's statements, in order, under the savepoint `target`: when one meets other work (a row locked elsewhere
   * past the lock timeout, a deadlock, a cancelled statement, a limit of the server), the target's work is rolled
   * back and its operations are left pending, returned to be held back (failChunk), while the chunk goes on with its
   * other targets. Anything else that fails a chunk (a lost connection, the skip limit) is thrown.
   */
  private async applyTarget(
    tx: PoolClient,
    statements: StatementPlan[],
    outcomes: OperationOutcome[],
    steps: StepRecord[],
  ): Promise<HeldTarget | null> {
    const [settled, ran] = [outcomes.length, steps.length];
    try {
      for (const group of foldRounds(statements)) {
        if (group.length > 1 && (await this.applyFolded(tx, group, outcomes, steps))) continue;
        for (const statement of group) steps.push(await this.runStatement(tx, statement, outcomes));
      }
      return null;
    } catch (error) {
      if (!isConcurrencyConflict(error)) throw error;
      await tx.query('ROLLBACK TO SAVEPOINT target');
      outcomes.length = settled;
      steps.length = ran;
      return { operations: statements.flatMap((statement) => statement.operations), error };
    }
  }

  /**
   * A chunk that failed as a whole, or a target of a chunk that met other work, though the database answers: counted
   * against its operations (see ChunkStep). A row locked elsewhere is no fault of the operations: their targets are
   * only left alone for a while (ChunkRepository.deferTargets), however many times that happens.
   */
  private async failChunk(startedAt: Date, chunk: ClaimedOperation[], error: unknown): Promise<ChunkResult> {
    const read = operationCount(chunk);
    if (isLockTimeout(error)) {
      const targets = [...new Set(chunk.map((op) => op.target))];
      const { intervalMs, lockTimeoutMs } = this.config.poll;
      const holdMs = await this.chunkRepository.deferTargets(targets, (deferrals) =>
        backOffMs(Math.max(intervalMs, lockTimeoutMs), deferrals),
      );
      const next = `a row is locked elsewhere; ${targets.join(', ')} left alone for ${holdMs} ms`;
      return { chunkId: await this.chunkRepository.recordFailure(startedAt, read, error, next), read, full: true };
    }
    const failures = chunk.reduce((most, op) => Math.max(most, op.failures), 0) + 1;
    if (this.retryPolicy.givesUp(read, failures)) return this.giveUp(startedAt, chunk[0], failures, error);
    const retried = failures <= this.config.poll.retryLimit; // else split (the retry policy's next chunk sizes)
    const holdMs = retried ? this.backOffPolicy.delayMs(failures) : 0;
    const failed = new Map<string, number>(); // operations of each target in the chunk
    for (const { target, count } of chunk) failed.set(target, (failed.get(target) ?? 0) + count);
    const sizes = new Map(
      [...failed].map(([target, count]) => [target, this.retryPolicy.nextChunkSize(count, failures)]),
    );
    const next = retried
      ? `to be retried in ${holdMs} ms`
      : `to be claimed in chunks of ${[...new Set(sizes.values())].join(', ')}`;
    await this.chunkRepository.holdBack(chunk, sizes, holdMs);
    const chunkId = await this.chunkRepository.recordFailure(startedAt, read, error, `failure ${failures}, ${next}`);
    return { chunkId, read, full: true };
  }

  /** An operation alone in a chunk that failed as a whole once more: it cannot be applied, and ends FAILED. */
  private async giveUp(
    startedAt: Date,
    operation: ClaimedOperation,
    failures: number,
    error: unknown,
  ): Promise<ChunkResult> {
    const type = shapeType(operation.shape) ?? 'operation'; // this may be why it cannot be applied
    const step: StepRecord = {
      ...emptyCounts(),
      name: `gave up ${type} ${operation.target}`,
      target: operation.target,
      type,
      status: 'FAILED',
      exitMessage: `its chunk failed as a whole ${failures} times: ${publicReason(error)}`,
      startedAt,
      endedAt: new Date(),
      readCount: 1,
      writeSkipCount: 1,
      rollbackCount: failures,
    };
    const summary = await this.db.transaction(async (tx) => {
      const taken = await this.chunkRepository.takeAlone(tx, operation);
      if (!taken) return null; // cancelled meanwhile
      const outcome: OperationOutcome = {
        operation: taken,
        status: 'FAILED',
        rowsAffected: null,
        error: operationError(error),
      };
      const record = { startedAt, read: 1, filtered: 0, steps: [step], outcomes: [outcome] };
      return { ...record, chunkId: await this.chunkRepository.recordChunk(tx, record) };
    });
    if (!summary) return { chunkId: null, read: 1, full: true };
    for (const listener of this.listeners.all) {
      listener.onSkip?.(summary.outcomes[0]);
      listener.afterChunk?.(summary);
    }
    return { chunkId: summary.chunkId, read: 1, full: true };
  }

  /**
   * Rounds applied as one change of each row (foldRounds): each operation affected its row, or none where the row was
   * missing, and each round is recorded as a step of its own, as it would have been; false, with nothing applied, where
   * the rounds are to run as they are.
   */
  private async applyFolded(
    tx: PoolClient,
    plans: StatementPlan[],
    outcomes: OperationOutcome[],
    steps: StepRecord[],
  ): Promise<boolean> {
    const startedAt = new Date();
    const missed = await this.applier.applyFolded(tx, plans);
    if (missed === null) return false;
    const endedAt = new Date();
    for (const plan of plans) {
      if (missed.size === 0) for (const operation of plan.operations) outcomes.push(completed(operation, 1));
      else
        for (const part of missedOutcomes(plan.operations, (id) => (missed.has(id) ? 0 : 1)))
          outcomes.push(settled(part));
      const step = stepOf(plan, startedAt);
      step.endedAt = endedAt;
      step.writeCount = step.readCount;
      step.exitMessage = `applied as one statement with the ${plans.length - 1} other rounds of its rows`;
      steps.push(step);
      for (const listener of this.listeners.all)
        listener.onStatement?.(plan, false, (endedAt.getTime() - startedAt.getTime()) / plans.length);
    }
    return true;
  }

  /**
   * One statement for the whole plan; when it fails, its operations in parts down to the failing ones
   * (StatementApplier.applyOrSettle), each of which the skip policy decides, counting the operations this chunk failed
   * before.
   */
  private async runStatement(tx: PoolClient, plan: StatementPlan, outcomes: OperationOutcome[]): Promise<StepRecord> {
    const step = stepOf(plan, new Date());
    const skipped = outcomes.filter((o) => o.status === 'FAILED').length;
    const applied = await this.applier.applyOrSettle(tx, plan, (error) => this.retryPolicy.isRetryable(error));
    if (applied.error !== null) {
      step.rollbackCount += 1;
      step.exitMessage =
        `statement failed with ${publicReason(applied.error)}; applied in parts down to the failing operations ` +
        `(${applied.statements + 1} statements)`;
    }
    for (const part of applied.outcomes) {
      if (part.error === null) {
        outcomes.push(settled(part));
        step.writeCount += operationCount([part.operation]);
        continue;
      }
      if (!this.skipPolicy.shouldSkip(part.error, skipped + step.writeSkipCount))
        throw new FailureLimitExceeded(this.config.poll.skipLimit, part.error);
      const outcome: OperationOutcome = {
        operation: part.operation,
        status: 'FAILED',
        rowsAffected: null,
        error: part.error,
      };
      outcomes.push(outcome);
      step.writeSkipCount += 1;
      for (const listener of this.listeners.all) listener.onSkip?.(outcome);
    }
    step.endedAt = new Date();
    for (const listener of this.listeners.all) {
      listener.onStatement?.(plan, applied.error !== null, step.endedAt.getTime() - step.startedAt.getTime());
    }
    return step;
  }
}

/** A statement's step, before it runs. */
function stepOf(plan: StatementPlan, startedAt: Date): StepRecord {
  return {
    ...emptyCounts(),
    name: `${plan.type} ${plan.table.name} (${plan.columns.join(', ')})${plan.keyColumns ? ` by (${plan.keyColumns.join(', ')})` : ''}`,
    target: plan.table.name,
    type: plan.type,
    status: 'COMPLETED',
    exitMessage: null,
    startedAt,
    endedAt: startedAt,
    readCount: operationCount(plan.operations),
    commitCount: 1,
  };
}

/** A target of a chunk whose statements met other work: its operations, left pending, and why. */
type HeldTarget = AppliedChunk['held'][number];

/** A chunk's statements, target by target (the planner plans them so: each target's in order, one after another). */
function byTarget(statements: StatementPlan[]): StatementPlan[][] {
  const targets: StatementPlan[][] = [];
  for (const statement of statements) {
    const last = targets.at(-1);
    if (last && last[0].operations[0].target === statement.operations[0].target) last.push(statement);
    else targets.push([statement]);
  }
  return targets;
}

/** How many operations these outcomes settle, each run counted whole. */
function settledCount(outcomes: OperationOutcome[]): number {
  return operationCount(outcomes.map((outcome) => outcome.operation));
}

function completed(operation: ClaimedOperation, rowsAffected: number): OperationOutcome {
  return { operation, status: 'COMPLETED', rowsAffected, error: null };
}

/** A statement's outcome of operations that went through. */
function settled({ operation, rowsAffected, missed }: PartOutcome): OperationOutcome {
  return { ...completed(operation, rowsAffected!), ...(missed && { missed }) };
}
