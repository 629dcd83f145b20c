import { Injectable } from '@nestjs/common';
import { ChunkEntity } from '../../entities';
import { BatchError } from '../batch-error';
import type { AuthenticatedClient } from '../access/client.service';
import { Database } from '../storage/database';

/**
 * Reads the queue's chunks (batch runs) and their steps. An admin sees all; a client sees the chunks that settled at least one of its operations, with only the steps on targets it may write.
 */
@Injectable()
export class ChunkService {
  constructor(private readonly db: Database) {}

  private get chunks() {
    return this.db.dataSource.getRepository(ChunkEntity);
  }

  async list(
    client: AuthenticatedClient,
    limit = 50,
    cursor?: string,
  ): Promise<{ items: ChunkEntity[]; nextCursor: string | null }> {
    const query = this.chunks
      .createQueryBuilder('e')
      .orderBy('e.id', 'DESC')
      .limit(limit + 1);
    if (cursor) query.andWhere('e.id < :cursor', { cursor });
    if (!client.admin) query.andWhere(OWN_OPERATION, { client: client.id });
    const rows = await query.getMany();
    const items = rows.slice(0, limit);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
  }

  async get(client: AuthenticatedClient, id: string): Promise<ChunkEntity> {
    const query = this.chunks
      .createQueryBuilder('e')
      .leftJoinAndSelect('e.steps', 's')
      .where('e.id = :id', { id })
      .orderBy('s.id', 'ASC');
    if (!client.admin) query.andWhere(OWN_OPERATION, { client: client.id });
    const chunk = await query.getOne();
    if (!chunk) throw new BatchError('NOT_FOUND', `No execution ${id}`);
    if (!client.admin) chunk.steps = chunk.steps?.filter((step) => client.mayWrite(step.target));
    return chunk;
  }
}

/** The chunk settled at least one of the client's operations (recorded with its outcomes). */
const OWN_OPERATION = 'EXISTS (SELECT 1 FROM batch.chunk_clients c WHERE c.client_id = :client AND c.chunk_id = e.id)';
