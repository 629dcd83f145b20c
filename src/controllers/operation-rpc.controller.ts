import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload, RmqContext } from '@nestjs/microservices';
import {
  BATCH_PATTERNS,
  ICreateBatchOperationResponse,
  ICreateBatchOperationsResponse,
  IGetBatchOperationResponse,
} from '../interfaces/operation.interfaces';
import { AuthenticatedClient } from '../services/access/client.service';
import { OperationService } from '../services/ingest/operation.service';
import { Caller } from './auth';
import { rpcRequestId } from './rpc-server';
import { OperationCreateDto, OperationIdDto, OperationsCreateDto } from './dto/operation.dto';

/** The operations' RPC patterns (docs/api.md#patterns), on the queue BATCH_SERVICE_RMQ_QUEUE. */
@Controller()
export class OperationRpcController {
  constructor(private readonly operations: OperationService) {}

  @MessagePattern(BATCH_PATTERNS.createOperation)
  create(
    @Caller() client: AuthenticatedClient,
    @Payload() dto: OperationCreateDto,
    @Ctx() context: RmqContext,
  ): Promise<ICreateBatchOperationResponse> {
    return this.operations.create(client, dto, rpcRequestId(context));
  }

  @MessagePattern(BATCH_PATTERNS.createOperations)
  async createMany(
    @Caller() client: AuthenticatedClient,
    @Payload() dto: OperationsCreateDto,
    @Ctx() context: RmqContext,
  ): Promise<ICreateBatchOperationsResponse> {
    return { operations: await this.operations.createMany(client, dto.operations, rpcRequestId(context)) };
  }

  @MessagePattern(BATCH_PATTERNS.getOperation)
  get(@Caller() client: AuthenticatedClient, @Payload() { id }: OperationIdDto): Promise<IGetBatchOperationResponse> {
    return this.operations.get(client, id);
  }

  @MessagePattern(BATCH_PATTERNS.cancelOperation)
  cancel(
    @Caller() client: AuthenticatedClient,
    @Payload() { id }: OperationIdDto,
  ): Promise<IGetBatchOperationResponse> {
    return this.operations.cancel(client, id);
  }
}
