import type { TargetTable } from './catalog.interfaces';
import type { IOperationError, OperationType } from './operation.interfaces';

/**
 * The queue's chunk engine in its own words: a chunk claims pending operations, plans them into set-based statements
 * and applies each statement, and policies decide what a failure means; its records are chunks and chunk steps.
 */

/**
 * A pending operation claimed by a chunk transaction, or a run of them: operations alike (one client, target, shape and
 * priority, inserts or upserts read from their stream) with consecutive ids, claimed, applied and recorded together.
 * Its target stays locked until the chunk commits. Its values stay in the database: statements read them from there;
 * the planner needs only its shape and identity (row-identity.ts), and a run needs no planning (a statement keeps
 * inserts and upserts in order, and one that meets a row twice fails and is applied one at a time).
 */
export interface ClaimedOperation {
  /** Its id; a run's first. */
  id: string;
  /** 1, or how many operations the run holds: the ids from `id` on (or, for a round, its `ids`). */
  count: number;
  /**
   * A round's ids, ascending: the k-th operations on the rows of a stream, of one shape (see batch.claim), which one
   * statement applies; absent for a run or one operation.
   */
  ids?: string[];
  clientId: string;
  target: string;
  /** Its type, columns and key columns, and the version of the table's keys its identity was computed against. */
  shape: string;
  /** The rows it may touch; null for a run or a round. */
  identity: string | null;
  /** Higher is applied earlier (order of application: priority, then id). */
  priority: number;
  /** How many times it was applied before (it is PENDING again after a retry). */
  attempts: number;
  /** How many chunks it was in that failed as a whole. */
  failures: number;
  /** The size of its values (a run's, together), for the chunk's and the statements' byte budgets. */
  bytes: number;
  /** The length of its idempotency key and label as JSON, which its notification echoes (a run's, together). */
  chars: number;
  /** Read from the deferred set (scheduled, retried or held back), not from its stream. */
  deferred: boolean;
}

/**
 * How an operation settled; a run's (or a round's) operations all completed, each affecting one row but those listed in
 * `missed`, which found no row and affected none.
 */
export interface OperationOutcome {
  operation: ClaimedOperation;
  status: 'COMPLETED' | 'FAILED';
  rowsAffected: number | null;
  error: IOperationError | null;
  missed?: string[];
}

/** Operations of one target that one statement applies together, in order. */
export interface StatementPlan {
  /** The target table as the catalog described it when the chunk was planned. */
  table: TargetTable;
  type: OperationType;
  /** The columns the statement writes (values), in a fixed order. */
  columns: string[];
  /** update/delete/increment: the key columns; upsert: the conflict key; insert: null. */
  keyColumns: string[] | null;
  operations: ClaimedOperation[];
  /**
   * The table holding the operations' values (`id`, `row_values`, `row_key`, `priority`): the queue's
   * `batch.operations` when absent, a job writer's items staged in a temporary table otherwise.
   */
  source?: string;
  /**
   * The schema of the writer's functions (`array_literal`, `apply_in_parts`, …) in the target's database: the queue's
   * `batch` when absent, `batch_ledger` in another database.
   */
  helpers?: string;
}

/** What a chunk's planning gives: statements to run in order, and operations refused before any statement. */
export interface ChunkPlan {
  statements: StatementPlan[];
  filtered: OperationOutcome[];
}

/** Who may write what, as the chunk's transaction reads the clients: a revoked client may write nothing. */
export interface Grants {
  mayWrite(clientId: string, target: string): boolean;
}

/** An operation of a statement applied in parts: the rows it affected, or the database's error of its own. */
export interface PartOutcome {
  operation: ClaimedOperation;
  rowsAffected: number | null;
  error: { code: string; message: string } | null;
  /** A run's or a round's operations that found no row (OperationOutcome). */
  missed?: string[];
}

export interface ChunkSummary {
  chunkId: string;
  read: number;
  outcomes: OperationOutcome[];
  startedAt: Date;
}

/** Hooks around each chunk (metrics, notifications, logs); every method is optional. */
export abstract class ChunkListener {
  afterChunk?(summary: ChunkSummary): void;
  afterChunkError?(error: unknown, read: number): void;
  onSkip?(outcome: OperationOutcome): void;
  /** After each statement; `fallback` when it failed and its operations were applied one by one. */
  onStatement?(plan: StatementPlan, fallback: boolean, durationMs: number): void;
}

/** All chunk listeners, as one injectable. */
export class ChunkListeners {
  constructor(readonly all: ChunkListener[]) {}
}
