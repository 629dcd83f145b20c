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
import { planStatements } from './statement-planner';

/** Plans a chunk, target by target, into set-based statements (see planStatements). */
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
          ...operations.map((operation) => ({ operation, status: 'FAILED' as const, rowsAffected: null, error })),
        );
        continue;
      }
      statements.push(
        ...planStatements(table, operations, {
          rows: this.config.poll.statementMaxRows,
          bytes: this.config.poll.maxStatementBytes,
        }),
      );
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
