import { ClientEntity } from './client.entity';
import { ExecutionStepEntity } from './execution-step.entity';
import { ExecutionEntity } from './execution.entity';

/**
 * The tables the service reads through TypeORM repositories: clients (admin API) and the job repository's executions
 * and steps. The queue's own tables (operations, streams, the deferred set, outcomes, outbox, counts) are written and read
 * with plain SQL on the same pool, where every statement and round trip is chosen (see Database).
 */
export { ClientEntity, ExecutionEntity, ExecutionStepEntity };
export const ENTITIES = [ClientEntity, ExecutionEntity, ExecutionStepEntity];
