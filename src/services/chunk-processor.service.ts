import { Injectable } from '@nestjs/common';
import { ChunkPlan, ClaimedOperation, ItemProcessor, OperationOutcome, StatementPlan } from '../interfaces/chunk.interfaces';
import { CatalogService } from './catalog.service';

/**
 * Plans a chunk into statements. Operations of one target keep their order; a run of consecutive inserts
 * with the same column set becomes one statement, so the statements, run in order, apply the operations in
 * exactly their order of application.
 */
@Injectable()
export class ChunkProcessor extends ItemProcessor {
  constructor(private readonly catalog: CatalogService) {
    super();
  }

  async process(chunk: ClaimedOperation[]): Promise<ChunkPlan> {
    const statements: StatementPlan[] = [];
    const filtered: OperationOutcome[] = [];
    for (const [target, operations] of groupByTarget(chunk)) {
      if (!(await this.catalog.find(target))) {
        // The table is gone: applied one at a time, each would fail the same way.
        const error = { code: '42P01', message: `relation "${target}" does not exist` };
        filtered.push(...operations.map((operation) => ({ operation, status: 'FAILED' as const, rowsAffected: null, error })));
        continue;
      }
      statements.push(...planTarget(operations));
    }
    return { statements, filtered };
  }
}

function groupByTarget(chunk: ClaimedOperation[]): Map<string, ClaimedOperation[]> {
  const groups = new Map<string, ClaimedOperation[]>();
  for (const operation of chunk) {
    const group = groups.get(operation.target);
    if (group) group.push(operation);
    else groups.set(operation.target, [operation]);
  }
  return groups;
}

/** Consecutive operations of the same type and column set share a statement. */
export function planTarget(operations: ClaimedOperation[]): StatementPlan[] {
  const plans: StatementPlan[] = [];
  let current: StatementPlan | null = null;
  for (const operation of operations) {
    const columns = Object.keys(operation.values ?? {}).sort();
    if (!current || current.type !== operation.type || current.columns.join('\u0000') !== columns.join('\u0000')) {
      current = { target: operation.target, type: operation.type, columns, operations: [] };
      plans.push(current);
    }
    current.operations.push(operation);
  }
  return plans;
}
