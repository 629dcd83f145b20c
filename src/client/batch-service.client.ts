import { Injectable, LoggerService, OnModuleDestroy } from '@nestjs/common';
import { RmqRecordBuilder } from '@nestjs/microservices';
import type { Readable } from 'node:stream';
import { firstValueFrom, lastValueFrom, timeout } from 'rxjs';
import { RmqClient, SILENT_LOGGER } from '../config/amqp';
import { AMQP_SOCKET_OPTIONS } from '../config/amqp-connection';
import {
  BATCH_PATTERNS,
  IBatchErrorResponse,
  ICreateBatchOperationRequest,
  ICreateBatchOperationResponse,
  ICreateBatchOperationsResponse,
  IGetBatchOperationResponse,
} from '../interfaces/operation.interfaces';
import {
  FINAL_JOB_STATUSES,
  IJobDefinitionList,
  IJobExecution,
  IJobExecutionList,
  IJobRejectList,
  IListJobExecutionsRequest,
  JOB_PATTERNS,
  JobParameters,
} from '../interfaces/job.interfaces';
import { BatchServiceError } from './batch-service.error';
import { importFile, ImportParams } from './import-file';

export interface BatchServiceClientOptions {
  /** AMQP URL of the broker, e.g. amqp://guest:guest@127.0.0.1:5672 */
  url: string;
  /** The service's queue (BATCH_SERVICE_RMQ_QUEUE); default `batch_service`. */
  queue?: string;
  /** This caller's API key, sent as the AMQP header `x-api-key`. */
  apiKey: string;
  /** How long to wait for a reply; default 30 s. */
  timeoutMs?: number;
  /** Where the broker connection's events (connected, lost) are written; by default nowhere. */
  logger?: LoggerService;
  /** The service's HTTP address (e.g. http://127.0.0.1:3000), for importFile: uploads go over HTTP. */
  httpUrl?: string;
}

/**
 * Typed RPC calls to the Batch Service over RabbitMQ.
 *
 * `createOperation(s)` send a request and resolve with the answer once the operations are durably stored (ids,
 * `duplicate`), or reject with the contract's error: use them when you need the id, want to know that the
 * operations were accepted, or want back-pressure (a caller that awaits its calls never runs ahead of the service).
 * `emitOperation(s)` publish an event and resolve once the broker has it: nothing is answered, and an operation the
 * service refuses (a bad key or value, over the rate limit) lands in the dead-letter queue for an operator, not with
 * you. Enough for writes whose outcome you learn from the `operations.settled` notifications anyway. An event is
 * stored at least once (a crash before its acknowledgement stores it again): give each an `idempotencyKey` to make
 * it exactly once.
 */
@Injectable()
export class BatchServiceClient implements OnModuleDestroy {
  private readonly proxy: RmqClient;
  private readonly timeoutMs: number;

  constructor(private readonly options: BatchServiceClientOptions) {
    this.proxy = new RmqClient(
      {
        urls: [options.url],
        queue: options.queue ?? 'batch_service',
        queueOptions: { durable: true },
        socketOptions: AMQP_SOCKET_OPTIONS,
      },
      options.logger ?? SILENT_LOGGER,
    );
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  createOperation(operation: ICreateBatchOperationRequest): Promise<ICreateBatchOperationResponse> {
    return this.call(BATCH_PATTERNS.createOperation, operation);
  }

  createOperations(operations: ICreateBatchOperationRequest[]): Promise<ICreateBatchOperationsResponse> {
    return this.call(BATCH_PATTERNS.createOperations, { operations });
  }

  /** Publishes a `createOperation` event; resolves once the broker confirmed it (see the class's comment). */
  emitOperation(operation: ICreateBatchOperationRequest): Promise<void> {
    return this.emit(BATCH_PATTERNS.createOperation, operation);
  }

  /** Publishes a `createOperations` event (1..1000 operations, all stored or none); resolves once the broker has it. */
  emitOperations(operations: ICreateBatchOperationRequest[]): Promise<void> {
    return this.emit(BATCH_PATTERNS.createOperations, { operations });
  }

  getOperation(id: string): Promise<IGetBatchOperationResponse> {
    return this.call(BATCH_PATTERNS.getOperation, { id });
  }

  cancelOperation(id: string): Promise<IGetBatchOperationResponse> {
    return this.call(BATCH_PATTERNS.cancelOperation, { id });
  }

  /**
   * Launches `job` with its identifying `parameters` and its `options`: the new execution, STARTING; CONFLICT when its
   * instance runs or ran (`details.reason`, `details.executionId`).
   */
  launchJob(job: string, parameters: JobParameters = {}, options: JobParameters = {}): Promise<IJobExecution> {
    return this.call(JOB_PATTERNS.launchJob, { job, parameters, options });
  }

  getJobExecution(id: string): Promise<IJobExecution> {
    return this.call(JOB_PATTERNS.getJobExecution, { id });
  }

  /** Newest first, a page of `limit` (default 50); `instanceId` gives one instance's executions, restarts included. */
  listJobExecutions(query: IListJobExecutionsRequest = {}): Promise<IJobExecutionList> {
    return this.call(JOB_PATTERNS.listJobExecutions, query);
  }

  stopJobExecution(id: string): Promise<IJobExecution> {
    return this.call(JOB_PATTERNS.stopJobExecution, { id });
  }

  restartJobExecution(id: string): Promise<IJobExecution> {
    return this.call(JOB_PATTERNS.restartJobExecution, { id });
  }

  /** A FAILED or STOPPED execution abandoned: its instance never runs again. */
  abandonJobExecution(id: string): Promise<IJobExecution> {
    return this.call(JOB_PATTERNS.abandonJobExecution, { id });
  }

  /** The items an execution skipped, in order, a page of `limit` (default 50). */
  getJobRejects(id: string, page: { limit?: number; cursor?: string } = {}): Promise<IJobRejectList> {
    return this.call(JOB_PATTERNS.getJobRejects, { id, ...page });
  }

  /** The jobs this service runs: each one's steps, parameters and options with their types. */
  listJobs(): Promise<IJobDefinitionList> {
    return this.call(JOB_PATTERNS.listJobs, {});
  }

  /**
   * Polls an execution until it ended (COMPLETED, FAILED, STOPPED or ABANDONED) and resolves with it; TIMEOUT after
   * `timeoutMs` (default: no limit). A JobFinishedConsumer hears the end without polling.
   */
  async waitForJobExecution(
    id: string,
    { intervalMs = 500, timeoutMs = Infinity }: { intervalMs?: number; timeoutMs?: number } = {},
  ): Promise<IJobExecution> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const execution = await this.getJobExecution(id);
      if (FINAL_JOB_STATUSES.includes(execution.status)) return execution;
      if (Date.now() + intervalMs > deadline)
        throw new BatchServiceError(
          'TIMEOUT',
          `Job execution ${id} was still ${execution.status} after ${timeoutMs} ms`,
        );
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  /**
   * Uploads a CSV or NDJSON data set (a path, or a stream) to be loaded into a table by the job `import`, streamed over
   * HTTP (the `httpUrl` option); resolves with the execution once the service stored the whole body.
   * `waitForJobExecution` awaits its end.
   */
  importFile(
    source: string | Readable,
    params: ImportParams,
    onProgress?: (sent: number, total: number | null) => void,
  ): Promise<IJobExecution> {
    if (!this.options.httpUrl) throw new Error("importFile needs the httpUrl option: the service's HTTP address");
    return importFile({ url: this.options.httpUrl, apiKey: this.options.apiKey }, source, params, onProgress);
  }

  async close(): Promise<void> {
    await this.proxy.close();
  }

  onModuleDestroy(): Promise<void> {
    return this.close();
  }

  private record(data: unknown) {
    return new RmqRecordBuilder(data)
      .setOptions({ headers: { 'x-api-key': this.options.apiKey }, persistent: true })
      .build();
  }

  private async emit(pattern: string, data: unknown): Promise<void> {
    const published$ = this.proxy.emit(pattern, this.record(data)).pipe(timeout(this.timeoutMs));
    await lastValueFrom(published$, { defaultValue: undefined }).catch((error: unknown) => {
      throw this.failure(pattern, error);
    });
  }

  private async call<T>(pattern: string, data: unknown): Promise<T> {
    const answer$ = this.proxy.send<T>(pattern, this.record(data)).pipe(timeout(this.timeoutMs));
    return firstValueFrom(answer$).catch((error: unknown) => {
      throw this.failure(pattern, error);
    });
  }

  /** What went wrong with a call, as a BatchServiceError where it has a code; anything else as it was thrown. */
  private failure(pattern: string, error: unknown): unknown {
    const body = error as Partial<IBatchErrorResponse> & { name?: string; message?: string; err?: Error };
    if (body?.status === 'error' && body.code)
      return new BatchServiceError(body.code, body.message ?? body.code, body.details);
    if (body?.name === 'TimeoutError')
      return new BatchServiceError('TIMEOUT', `No answer to ${pattern} within ${this.timeoutMs} ms`);
    // amqp-connection-manager reports a lost connection as {err}, amqplib as "channel closed"
    const lost = body?.err ?? (body?.message === 'channel closed' ? (error as Error) : null);
    if (lost) return new BatchServiceError('DISCONNECTED', `Broker connection lost during ${pattern}: ${lost.message}`);
    return error;
  }
}
