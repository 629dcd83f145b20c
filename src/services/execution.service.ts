import { Injectable } from '@nestjs/common';
import { ExecutionEntity } from '../entities';
import { BatchError } from './batch-error';
import { Database } from './database';

/** Reads the job repository: executions (batch runs) and their steps. */
@Injectable()
export class ExecutionService {
  constructor(private readonly db: Database) {}

  private get executions() {
    return this.db.dataSource.getRepository(ExecutionEntity);
  }

  async list(limit = 50, cursor?: string): Promise<{ items: ExecutionEntity[]; nextCursor: string | null }> {
    const query = this.executions.createQueryBuilder('e').orderBy('e.id', 'DESC').limit(limit + 1);
    if (cursor) query.where('e.id < :cursor', { cursor });
    const rows = await query.getMany();
    const items = rows.slice(0, limit);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
  }

  async get(id: string): Promise<ExecutionEntity> {
    const execution = await this.executions.findOne({ where: { id }, relations: { steps: true }, order: { steps: { id: 'ASC' } } });
    if (!execution) throw new BatchError('NOT_FOUND', `No execution ${id}`);
    return execution;
  }
}
