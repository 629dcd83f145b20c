import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { ItemWriter, StatementPlan } from '../interfaces/chunk.interfaces';
import { CatalogService } from './catalog.service';
import { targetStatement } from './target-sql';

/** Runs one statement plan as one set-based statement with array parameters. */
@Injectable()
export class ChunkWriter extends ItemWriter {
  constructor(private readonly catalog: CatalogService) {
    super();
  }

  async write(tx: PoolClient, plan: StatementPlan): Promise<number[]> {
    const table = await this.catalog.find(plan.target);
    if (!table) throw Object.assign(new Error(`relation "${plan.target}" does not exist`), { code: '42P01' });
    const statement = targetStatement(table, plan);
    const result = await tx.query<{ op: string }>(statement.sql, statement.params);
    if (statement.everyRow) return plan.operations.map(() => 1);
    const affected = new Map(plan.operations.map((op) => [op.id, 0]));
    for (const { op } of result.rows) affected.set(op, affected.get(op)! + 1);
    return [...affected.values()];
  }
}
