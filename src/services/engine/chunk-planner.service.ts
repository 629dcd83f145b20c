import { Injectable } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import {
  ChunkPlan,
  ClaimedOperation,
  Grants,
  OperationOutcome,
  StatementPlan,
} from '../../interfaces/chunk.interfaces';
import type { IOperationError } from '../../interfaces/operation.interfaces';
import { CatalogService } from '../storage/catalog.service';
import { planRuns, planStatements } from './statement-planner';
import { eachOperation } from '../storage/id-runs';

/** Plans a chunk, target by target, into set-based statements (see planStatements and planRuns). */
@Injectable()
export class ChunkPlanner {
  constructor(
    private readonly catalog: CatalogService,
    private readonly config: AppConfig,
  ) {}

  /** Plans the chunk; an operation its client may no longer write (Grants) is refused, not planned. */
  async plan(chunk: ClaimedOperation[], grants: Grants): Promise<ChunkPlan> {
    const statements: StatementPlan[] = [];
    const filtered: OperationOutcome[] = [];
    const refuse = (operations: ClaimedOperation[], error: IOperationError) =>
      filtered.push(
        ...operations
          .flatMap(eachOperation)
          .map((operation) => ({ operation, status: 'FAILED' as const, rowsAffected: null, error })),
      );
    for (const [target, claimed] of groupByTarget(chunk)) {
      const operations: ClaimedOperation[] = [];
      const forbidden: ClaimedOperation[] = []; // revoked, or no longer granted the target, since it was created
      for (const operation of claimed)
        (grants.mayWrite(operation.clientId, target) ? operations : forbidden).push(operation);
      refuse(forbidden, { code: 'FORBIDDEN', message: `the client may no longer write ${target}` });
      if (operations.length === 0) continue;
      const table = await this.catalog.find(target);
      if (!table) {
        // The table is gone: applied one at a time, each would fail the same way.
        refuse(operations, { code: '42P01', message: `relation "${target}" does not exist` });
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
