import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { ItemWriter, StatementPlan } from '../../interfaces/chunk.interfaces';
import { targetStatement } from './target-sql';
import { eachOperation } from '../storage/id-runs';

/** Runs one statement plan as one set-based statement reading the operations' stored values by id. */
@Injectable()
export class ChunkWriter extends ItemWriter {
  async write(tx: PoolClient, plan: StatementPlan): Promise<number[] | null> {
    const statement = targetStatement(plan);
    const result = await tx.query<{ op: string }>(statement.sql, statement.params);
    if (statement.everyRow) return null;
    const affected = new Map(plan.operations.flatMap(eachOperation).map((op) => [op.id, 0]));
    for (const { op } of result.rows) affected.set(op, affected.get(op)! + 1);
    return [...affected.values()];
  }
}
