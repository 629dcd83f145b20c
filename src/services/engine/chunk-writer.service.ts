import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { ItemWriter, PartOutcome, StatementPlan } from '../../interfaces/chunk.interfaces';
import { foldedStatement, targetStatement } from './target-sql';
import { eachOperation } from '../storage/id-runs';
import { numberArray } from '../storage/database';
import { CHUNK_FAILURE_SQLSTATE } from '../storage/database-error';

/** Runs one statement plan as one set-based statement reading the operations' stored values by id. */
@Injectable()
export class ChunkWriter extends ItemWriter {
  async write(tx: PoolClient, plan: StatementPlan): Promise<number[] | null> {
    const statement = targetStatement(plan);
    const result = await tx.query<{ ops: string[] | null }>(statement.sql, statement.params);
    const changed = statement.everyRow ? null : result.rows[0].ops;
    if (changed === null) return null;
    const affected = new Map(plan.operations.flatMap(eachOperation).map((op) => [op.id, 0]));
    for (const op of changed) affected.set(op, affected.get(op)! + 1);
    return [...affected.values()];
  }

  /** The same statement over parts of its operations, inside the database: batch.apply_in_parts (one round trip). */
  async writeInParts(tx: PoolClient, plan: StatementPlan): Promise<{ outcomes: PartOutcome[]; statements: number }> {
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

  /** Rounds as one change of each row: batch.apply_folded, which undoes it where a step failed or refused. */
  async writeFolded(tx: PoolClient, plans: StatementPlan[]): Promise<Set<string> | null> {
    const { sql, params } = foldedStatement(plans);
    const { rows } = await tx.query<{ folded: boolean; missed: string[] | null }>(
      'SELECT * FROM batch.apply_folded($1, $2::bigint[], $3::bigint[], $4::int[], $5)',
      [sql, ...params, CHUNK_FAILURE_SQLSTATE],
    );
    return rows[0].folded ? new Set(rows[0].missed) : null;
  }
}
