import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { ItemWriter, StatementPlan } from '../interfaces/chunk.interfaces';
import { CatalogService } from './catalog.service';
import { insertStatement } from './target-sql';

/** Runs one statement plan as one set-based statement with array parameters. */
@Injectable()
export class ChunkWriter extends ItemWriter {
  constructor(private readonly catalog: CatalogService) {
    super();
  }

  async write(tx: PoolClient, plan: StatementPlan): Promise<number[]> {
    const table = await this.catalog.find(plan.target);
    if (!table) throw Object.assign(new Error(`relation "${plan.target}" does not exist`), { code: '42P01' });
    switch (plan.type) {
      case 'insert': {
        const statement = insertStatement(table, plan);
        await tx.query(statement.sql, statement.params);
        return plan.operations.map(() => 1);
      }
      default:
        throw new Error(`Operation type ${plan.type} is not applied yet`);
    }
  }
}
