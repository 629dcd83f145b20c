import { Injectable } from '@nestjs/common';
import { ExecutionEntity } from '../../entities';
import { BatchError } from '../batch-error';
import type { AuthenticatedClient } from '../access/client.service';
import { Database } from '../storage/database';

/**
 * Reads the job repository: executions (batch runs) and their steps. An admin sees all; a client sees the
 * executions that settled at least one of its operations, with only the steps on targets it may write.
 */
@Injectable()
export class ExecutionService {
  constructor(private readonly db: Database) {}

  private get executions() {
    return this.db.dataSource.getRepository(ExecutionEntity);
  }

  async list(
    client: AuthenticatedClient,
    limit = 50,
    cursor?: string,
  ): Promise<{ items: ExecutionEntity[]; nextCursor: string | null }> {
    const query = this.executions
      .createQueryBuilder('e')
      .orderBy('e.id', 'DESC')
      .limit(limit + 1);
    if (cursor) query.andWhere('e.id < :cursor', { cursor });
    if (!client.admin) query.andWhere(OWN_OPERATION, { client: client.id });
    const rows = await query.getMany();
    const items = rows.slice(0, limit);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
  }

  async get(client: AuthenticatedClient, id: string): Promise<ExecutionEntity> {
    const query = this.executions
      .createQueryBuilder('e')
      .leftJoinAndSelect('e.steps', 's')
      .where('e.id = :id', { id })
      .orderBy('s.id', 'ASC');
    if (!client.admin) query.andWhere(OWN_OPERATION, { client: client.id });
    const execution = await query.getOne();
    if (!execution) throw new BatchError('NOT_FOUND', `No execution ${id}`);
    if (!client.admin) execution.steps = execution.steps?.filter((step) => client.mayWrite(step.target));
    return execution;
  }
}

/** The execution settled at least one of the client's operations (recorded with its outcomes). */
const OWN_OPERATION =
  'EXISTS (SELECT 1 FROM batch.execution_clients c WHERE c.client_id = :client AND c.execution_id = e.id)';
