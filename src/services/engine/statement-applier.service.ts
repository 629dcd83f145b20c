import { Injectable } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';
import { ClaimedOperation, PartOutcome, StatementPlan } from '../../interfaces/chunk.interfaces';
import type { TargetTable } from '../../interfaces/catalog.interfaces';
import { foldedStatement, oneRun, targetStatement, typedInsertStatement } from './target-sql';
import { makeTypedStage } from '../storage/typed-stages';
import { MAIN } from '../storage/named-databases';
import { eachIdOf, eachOperation, operationCount } from '../storage/id-runs';
import { numberArray } from '../storage/database';
import { CHUNK_FAILURE_SQLSTATE, isConcurrencyConflict, operationError } from '../storage/database-error';

/**
 * The outcomes of operations a statement applied, given the rows each id affected: a run or a round whose operations
 * each affected one row or none is kept whole, those that affected none listed (missed), since a statement of a
 * thousand deletes of rows gone would otherwise be a thousand outcomes; anything else is taken apart (eachOperation).
 */
export function missedOutcomes(operations: ClaimedOperation[], affected: (id: string) => number): PartOutcome[] {
  const outcomes: PartOutcome[] = [];
  for (const operation of operations) {
    if (operation.count === 1 && !operation.ids) {
      outcomes.push({ operation, rowsAffected: affected(operation.id), error: null });
      continue;
    }
    const missed: string[] = [];
    let whole = true;
    eachIdOf(operation, (id) => {
      const rows = affected(id);
      if (rows === 0) missed.push(id);
      else if (rows !== 1) whole = false;
    });
    if (whole) outcomes.push({ operation, rowsAffected: 1, error: null, ...(missed.length > 0 && { missed }) });
    else
      for (const one of eachOperation(operation))
        outcomes.push({ operation: one, rowsAffected: affected(one.id), error: null });
  }
  return outcomes;
}

/**
 * A target's entry in batch.typed_targets: the table its inserts' values are kept typed in (null where it keeps none),
 * and the type of each of its columns when the entry was made.
 */
interface Stage {
  relation: string | null;
  types: Map<string, string>;
}

/**
 * A statement under a savepoint of its own, undone where it fails or does not affect `rows` rows: whether it went
 * through. A conflict with other work (a lock waited for too long, a deadlock; isConcurrencyConflict) is thrown once
 * undone: the statement from the JSON would meet it too.
 */
async function underSavepoint(tx: PoolClient, sql: string, params: unknown[], rows?: number): Promise<boolean> {
  await tx.query('SAVEPOINT typed');
  let conflict: unknown = null;
  const done = await tx.query(sql, params).then(
    (result) => rows === undefined || result.rowCount === rows,
    (error: unknown) => {
      if (isConcurrencyConflict(error)) conflict = error;
      return false;
    },
  );
  await tx.query(done ? 'RELEASE SAVEPOINT typed' : 'ROLLBACK TO SAVEPOINT typed; RELEASE SAVEPOINT typed');
  if (conflict) throw conflict;
  return done;
}

/**
 * Fewer inserts than this are applied from their JSON: the typed statement's savepoint costs two round trips, about
 * what reading the values of a hundred inserts typed saves.
 */
const TYPED_MIN_OPERATIONS = 100;

/** A plan's run (its first and last ids) and count, where it is a run of inserts long enough to read typed. */
function typedRun(plan: StatementPlan): [[string, string], number] | null {
  const run = oneRun(plan.operations);
  const count = operationCount(plan.operations);
  return plan.type === 'insert' && run && count >= TYPED_MIN_OPERATIONS ? [run, count] : null;
}

/** Whether the stage keeps each of the plan's columns in the type it has now. */
function typedAsNow(stage: Stage, plan: StatementPlan): boolean {
  return plan.columns.every((c) => stage.types.get(c) === plan.table.columns.get(c)?.castType);
}

/** How long the stage of a target is taken as read: one made meanwhile is used that much later. */
const STAGE_READ_MS = 5000;

/** Applies statement plans, each as one set-based statement reading the operations' stored values by id. */
@Injectable()
export class StatementApplier {
  private readonly stages = new Map<string, { stage: Stage | null; readAt: number }>();

  /**
   * Per table, the kinds of statement whose last one there missed rows (an update or delete of rows gone: a stream
   * that deletes rows twice, say). The next of such a kind runs at once the form that tells which operations changed a
   * row, where the bare change would be undone and run again in that form; one that misses nothing clears it.
   */
  private readonly missing = new WeakMap<TargetTable, Set<StatementPlan['type']>>();

  /**
   * Runs one statement; returns null when each of its operations affected one row, else each one's outcome, in order
   * (missedOutcomes).
   */
  private async apply(tx: PoolClient, plan: StatementPlan): Promise<PartOutcome[] | null> {
    if (await this.appliedTyped(tx, plan)) return null;
    let missing = this.missing.get(plan.table);
    const statement = targetStatement(plan, !missing?.has(plan.type));
    const result = await tx.query<{ ops: string[] | null }>(statement.sql, statement.params);
    const changed = statement.everyRow ? null : result.rows[0].ops;
    if (changed === null) {
      missing?.delete(plan.type);
      return null;
    }
    if (!missing) this.missing.set(plan.table, (missing = new Set()));
    missing.add(plan.type);
    const affected = new Map<string, number>();
    for (const op of changed) affected.set(op, (affected.get(op) ?? 0) + 1);
    return missedOutcomes(plan.operations, (id) => affected.get(id) ?? 0);
  }

  /**
   * Inserts of one run, of a target whose stage keeps each of their columns in the type it has now, applied from
   * their typed rows (typedInsertStatement): whether that went through with a row for each. Where it did not (rows
   * missing there, any error), it is undone, and they are applied from their JSON, which gives their outcome. Where a
   * column was retyped since the entry was made, the entry is made again for the columns as they are, for inserts
   * stored from now on: a stage of new types, or a first one where a column of a type kept nowhere (an enum, say) got
   * one that can be.
   */
  private async appliedTyped(tx: PoolClient, plan: StatementPlan): Promise<boolean> {
    if (plan.table.database !== MAIN || plan.source) return false;
    const run = typedRun(plan);
    if (!run) return false;
    const stage = await this.stageOf(tx, plan.table);
    if (!stage || stage.types.size === 0) return false; // none yet (ingest makes it), or no table of that name found
    if (!typedAsNow(stage, plan)) {
      this.stages.delete(plan.table.name);
      await underSavepoint(tx, 'SELECT batch.typed_stage($1)', [plan.table.name]).catch(() => false);
      return false;
    }
    if (!stage.relation) return false;
    const { sql, params } = typedInsertStatement(plan.table, plan.columns, stage.relation, ...run);
    return underSavepoint(tx, sql, params, run[1]);
  }

  /**
   * The stage that a run of inserts into a table of another database is copied from (copyInserts), and the types it
   * keeps, read through `queue`, the queue's database: null where there is none to read from. Where a column was retyped
   * since it was made (or the stage is not made yet), it is made for the columns as they are, for inserts stored from
   * now on.
   */
  async stageToCopy(queue: Pool, plan: StatementPlan): Promise<{ stage: string; types: Map<string, string> } | null> {
    if (!typedRun(plan)) return null;
    const stage = await this.stageOf(queue, plan.table);
    if (stage && typedAsNow(stage, plan)) return stage.relation ? { stage: stage.relation, types: stage.types } : null;
    this.stages.delete(plan.table.name);
    await makeTypedStage(queue, plan.table).catch(() => undefined);
    return null;
  }

  private async stageOf(tx: Pool | PoolClient, table: TargetTable): Promise<Stage | null> {
    const read = this.stages.get(table.name);
    if (read && Date.now() - read.readAt < STAGE_READ_MS) return read.stage;
    const { rows } = await tx.query<{ stage: string | null; columns: string[] | null; types: string[] | null }>(
      'SELECT stage, columns, types FROM batch.typed_targets WHERE target = $1',
      [table.name],
    );
    const [row] = rows;
    const stage = row
      ? { relation: row.stage, types: new Map((row.columns ?? []).map((c, i) => [c, row.types![i]])) }
      : null;
    this.stages.set(table.name, { stage, readAt: Date.now() });
    return stage;
  }

  /**
   * One statement under a savepoint; when it fails with an error of its data (not one `failsChunk` says fails the
   * chunk as a whole, which is thrown), rolled back and applied in parts down to its failing operations (applyInParts;
   * an operation alone fails with the statement's error). Returns each operation's outcome in order (a run's kept
   * whole where the statement went through; errors as operationError gives them), the statement's error (null when it
   * went through), and how many statements the parts took. A statement over a part, in order, gives what applying
   * that part one at a time would, so the parts do.
   */
  async applyOrSettle(
    tx: PoolClient,
    plan: StatementPlan,
    failsChunk: (error: unknown) => boolean,
  ): Promise<{ outcomes: PartOutcome[]; error: unknown; statements: number }> {
    await tx.query('SAVEPOINT statement');
    try {
      const applied = await this.apply(tx, plan);
      await tx.query('RELEASE SAVEPOINT statement');
      const outcomes = applied ?? plan.operations.map((operation) => ({ operation, rowsAffected: 1, error: null }));
      return { outcomes, error: null, statements: 0 };
    } catch (error) {
      if (failsChunk(error)) throw error;
      // Released too: a savepoint rolled back to stays open, and each open level takes a transaction id and a lock at
      // the next write, so failed statements would pile locks up to the end of the server's lock table.
      await tx.query('ROLLBACK TO SAVEPOINT statement; RELEASE SAVEPOINT statement');
      if (operationCount(plan.operations) > 1) return { ...(await this.applyInParts(tx, plan)), error };
      return {
        outcomes: [{ operation: plan.operations[0], rowsAffected: null, error: operationError(error) }],
        error,
        statements: 0,
      };
    }
  }

  /**
   * A statement of several operations that failed as a whole, applied in parts down to its failing operations, inside
   * the database (batch.apply_in_parts, one round trip): each operation's outcome in order (its runs taken apart), and
   * how many statements that took. An error that fails the chunk as a whole (ChunkRetryPolicy) is thrown.
   */
  private async applyInParts(
    tx: PoolClient,
    plan: StatementPlan,
  ): Promise<{ outcomes: PartOutcome[]; statements: number }> {
    const statement = targetStatement(plan);
    const operations = new Map(plan.operations.flatMap(eachOperation).map((op) => [op.id, op]));
    const { rows } = await tx.query<{
      op: string;
      affected: number | null;
      code: string | null;
      message: string | null;
      statements: number;
    }>(`SELECT * FROM ${plan.helpers ?? 'batch'}.apply_in_parts($1, $2::bigint[], $3, $4)`, [
      statement.sql,
      numberArray([...operations.keys()]),
      statement.everyRow,
      CHUNK_FAILURE_SQLSTATE,
    ]);
    const outcomes = rows.map(({ op, affected, code, message }) => ({
      operation: operations.get(op)!,
      rowsAffected: affected,
      error: code === null ? null : operationError({ code, message: message ?? '' }),
    }));
    return { outcomes, statements: rows.at(-1)?.statements ?? 0 };
  }

  /**
   * Rounds of updates and increments as one change of each row (foldRounds; batch.apply_folded, which undoes it where a
   * step failed or refused): where that applied, the ids of the operations whose row was missing (each affected none;
   * every other one row); else null, and the statements are to be run as they are.
   */
  async applyFolded(tx: PoolClient, plans: StatementPlan[]): Promise<Set<string> | null> {
    const { sql, params } = foldedStatement(plans);
    const { rows } = await tx.query<{ folded: boolean; missed: string[] | null }>(
      `SELECT * FROM ${plans[0].helpers ?? 'batch'}.apply_folded($1, $2::bigint[], $3::bigint[], $4::int[], $5)`,
      [sql, ...params, CHUNK_FAILURE_SQLSTATE],
    );
    return rows[0].folded ? new Set(rows[0].missed) : null;
  }
}
