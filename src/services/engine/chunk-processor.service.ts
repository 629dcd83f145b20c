import { Injectable } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import {
  ChunkPlan,
  ClaimedOperation,
  ItemProcessor,
  OperationOutcome,
  StatementPlan,
} from '../../interfaces/chunk.interfaces';
import { CatalogService } from '../storage/catalog.service';
import { planRuns, planStatements } from './statement-planner';
import { eachOperation } from '../storage/id-runs';

/** Plans a chunk, target by target, into set-based statements (see planStatements and planRuns). */
@Injectable()
export class ChunkProcessor extends ItemProcessor {
  constructor(
    private readonly catalog: CatalogService,
    private readonly config: AppConfig,
  ) {
    super();
  }

  async process(chunk: ClaimedOperation[]): Promise<ChunkPlan> {
    const statements: StatementPlan[] = [];
    const filtered: OperationOutcome[] = [];
    for (const [target, operations] of groupByTarget(chunk)) {
      const table = await this.catalog.find(target);
      if (!table) {
        // The table is gone: applied one at a time, each would fail the same way.
        const error = { code: '42P01', message: `relation "${target}" does not exist` };
        filtered.push(
          ...operations
            .flatMap(eachOperation)
            .map((operation) => ({ operation, status: 'FAILED' as const, rowsAffected: null, error })),
        );
        continue;
      }
      const limits = { rows: this.config.poll.statementMaxRows, bytes: this.config.poll.maxStatementBytes };
      for (const part of parts(operations))
        statements.push(...(part[0].identity === null ? planRuns : planStatements)(table, part, limits));
    }
    return { statements, filtered };
  }
}

/**
 * A target's claimed operations in order, cut where runs give way to operations one by one or back: each part is
 * planned on its own and its statements follow the previous part's, as its operations follow theirs.
 */
function parts(operations: ClaimedOperation[]): ClaimedOperation[][] {
  const cut: ClaimedOperation[][] = [];
  for (const operation of operations) {
    const last = cut.at(-1);
    if (last && (last[0].identity === null) === (operation.identity === null)) last.push(operation);
    else cut.push([operation]);
  }
  return cut;
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
