import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { RmqRecordBuilder } from '@nestjs/microservices';
import { firstValueFrom, timeout } from 'rxjs';
import { AMQP_SOCKET_OPTIONS, RmqClient } from '../config/amqp';
import {
  BATCH_PATTERNS,
  ErrorCode,
  IBatchErrorResponse,
  ICreateBatchOperationRequest,
  ICreateBatchOperationResponse,
  ICreateBatchOperationsResponse,
  IGetBatchOperationResponse,
} from '../interfaces/operation.interfaces';

export interface BatchServiceClientOptions {
  /** AMQP URL of the broker, e.g. amqp://guest:guest@127.0.0.1:5672 */
  url: string;
  /** The service's queue (BATCH_SERVICE_RMQ_QUEUE); default `batch_service`. */
  queue?: string;
  /** This caller's API key, sent as the AMQP header `x-api-key`. */
  apiKey: string;
  /** How long to wait for a reply; default 30 s. */
  timeoutMs?: number;
}

/**
 * An error answered by the Batch Service (CONTRACT.md section 2); or, from this client, TIMEOUT when no answer
 * came in time, DISCONNECTED when the broker connection was lost before the answer. After either, the request
 * may or may not have been stored: repeat it with the same idempotencyKey to find out without a duplicate.
 */
export class BatchServiceError extends Error {
  constructor(
    readonly code: ErrorCode | 'TIMEOUT' | 'DISCONNECTED',
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/** Typed RPC calls to the Batch Service over RabbitMQ. */
@Injectable()
export class BatchServiceClient implements OnModuleDestroy {
  private readonly proxy: RmqClient;
  private readonly timeoutMs: number;

  constructor(private readonly options: BatchServiceClientOptions) {
    this.proxy = new RmqClient({
      urls: [options.url],
      queue: options.queue ?? 'batch_service',
      queueOptions: { durable: true },
      socketOptions: AMQP_SOCKET_OPTIONS,
    });
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  createOperation(operation: ICreateBatchOperationRequest): Promise<ICreateBatchOperationResponse> {
    return this.call(BATCH_PATTERNS.createOperation, operation);
  }

  createOperations(operations: ICreateBatchOperationRequest[]): Promise<ICreateBatchOperationsResponse> {
    return this.call(BATCH_PATTERNS.createOperations, { operations });
  }

  getOperation(id: string): Promise<IGetBatchOperationResponse> {
    return this.call(BATCH_PATTERNS.getOperation, { id });
  }

  cancelOperation(id: string): Promise<IGetBatchOperationResponse> {
    return this.call(BATCH_PATTERNS.cancelOperation, { id });
  }

  async close(): Promise<void> {
    await this.proxy.close();
  }

  onModuleDestroy(): Promise<void> {
    return this.close();
  }

  private async call<T>(pattern: string, data: unknown): Promise<T> {
    const record = new RmqRecordBuilder(data)
      .setOptions({ headers: { 'x-api-key': this.options.apiKey }, persistent: true })
      .build();
    try {
      return await firstValueFrom(this.proxy.send<T>(pattern, record).pipe(timeout(this.timeoutMs)));
    } catch (error) {
      const body = error as Partial<IBatchErrorResponse> & { name?: string; message?: string; err?: Error };
      if (body?.status === 'error' && body.code)
        throw new BatchServiceError(body.code, body.message ?? body.code, body.details);
      if (body?.name === 'TimeoutError')
        throw new BatchServiceError('TIMEOUT', `No answer to ${pattern} within ${this.timeoutMs} ms`);
      // amqp-connection-manager reports a lost connection as {err}, amqplib as "channel closed"
      const lost = body?.err ?? (body?.message === 'channel closed' ? (error as Error) : null);
      if (lost)
        throw new BatchServiceError('DISCONNECTED', `Broker connection lost during ${pattern}: ${lost.message}`);
      throw error;
    }
  }
}
