import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { PartOutcome, StatementPlan } from '../../interfaces/chunk.interfaces';
import { foldedStatement, targetStatement } from './target-sql';
import { eachOperation } from '../storage/id-runs';
import { numberArray } from '../storage/database';
import { CHUNK_FAILURE_SQLSTATE } from '../storage/database-error';

/** Applies statement plans, each as one set-based statement reading the operations' stored values by id. */
@Injectable()
export class StatementApplier {
  /**
   * Runs one statement; returns null when each of its operations affected one row, else the rows each affected, in
   * order, its runs taken apart (eachOperation).
   */
  async apply(tx: PoolClient, plan: StatementPlan): Promise<number[] | null> {
    const statement = targetStatement(plan);
    const result = await tx.query<{ ops: string[] | null }>(statement.sql, statement.params);
    const changed = statement.everyRow ? null : result.rows[0].ops;
    if (changed === null) return null;
    const affected = new Map(plan.operations.flatMap(eachOperation).map((op) => [op.id, 0]));
    for (const op of changed) affected.set(op, affected.get(op)! + 1);
    return [...affected.values()];
  }

  /**
   * A statement of several operations that failed as a whole, applied in parts down to its failing operations, inside
   * the database (batch.apply_in_parts, one round trip): each operation's outcome in order (its runs taken apart), and
   * how many statements that took. An error that fails the chunk as a whole (ChunkRetryPolicy) is thrown.
   */
  async applyInParts(tx: PoolClient, plan: StatementPlan): Promise<{ outcomes: PartOutcome[]; statements: number }> {
    const statement = targetStatement(plan);
    const operations = new Map(plan.operations.flatMap(eachOperation).map((op) => [op.id, op]));
    const { rows } = await tx.query<{
      op: string;
      affected: number | null;
      code: string | null;
      message: string | null;
      statements: number;
    }>('SELECT * FROM batch.apply_in_parts($1, $2::bigint[], $3, $4)', [
      statement.sql,
      numberArray([...operations.keys()]),
      statement.everyRow,
      CHUNK_FAILURE_SQLSTATE,
    ]);
    const outcomes = rows.map(({ op, affected, code, message }) => ({
      operation: operations.get(op)!,
      rowsAffected: affected,
      error: code === null ? null : { code, message: message ?? '' },
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
      'SELECT * FROM batch.apply_folded($1, $2::bigint[], $3::bigint[], $4::int[], $5)',
      [sql, ...params, CHUNK_FAILURE_SQLSTATE],
    );
    return rows[0].folded ? new Set(rows[0].missed) : null;
  }
}
