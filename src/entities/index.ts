import { ClientEntity } from './client.entity';
import { ExecutionStepEntity } from './execution-step.entity';
import { ExecutionEntity } from './execution.entity';
import { OperationEntity } from './operation.entity';
import { OutboxMessageEntity } from './outbox-message.entity';

export { ClientEntity, ExecutionEntity, ExecutionStepEntity, OperationEntity, OutboxMessageEntity };
export const ENTITIES = [ClientEntity, OperationEntity, ExecutionEntity, ExecutionStepEntity, OutboxMessageEntity];
