import { ClientEntity } from './client.entity';
import { ChunkStepEntity } from './chunk-step.entity';
import { ChunkEntity } from './chunk.entity';

/**
 * The tables the service reads through TypeORM repositories: clients (admin API) and the queue's chunks
 * and steps. The queue's own tables (operations, streams, the deferred set, outcomes, outbox, counts) are written and read
 * with plain SQL on the same pool, where every statement and round trip is chosen (see Database).
 */
export { ClientEntity, ChunkEntity, ChunkStepEntity };
export const ENTITIES = [ClientEntity, ChunkEntity, ChunkStepEntity];
