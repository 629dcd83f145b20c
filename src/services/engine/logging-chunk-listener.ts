import { Injectable, Logger } from '@nestjs/common';
import { ChunkListener, ChunkSummary, OperationOutcome } from '../../interfaces/chunk.interfaces';
import { logReason } from '../storage/database-error';

/**
 * Logs what an operator must see: chunks with failed operations, and chunks that failed as a whole. Ids travel
 * as structured fields (`chunkId`, `operationId`) as well as in the message.
 */
@Injectable()
export class LoggingChunkListener extends ChunkListener {
  private readonly logger = new Logger('ChunkStep');

  afterChunk({ chunkId, read, outcomes }: ChunkSummary): void {
    const failed = outcomes.filter((o) => o.status === 'FAILED').length;
    if (failed > 0)
      this.logger.warn({ chunkId, read, failed }, `chunk ${chunkId}: ${failed} of ${read} operations failed`);
    else this.logger.debug({ chunkId, read }, `chunk ${chunkId}: ${read} operations completed`);
  }

  afterChunkError(error: unknown, read: number): void {
    const what = read > 0 ? `chunk of ${read} operations failed as a whole and rolled back` : 'claim failed';
    this.logger.error(`${what}: ${logReason(error)}`);
  }

  onSkip({ operation, error }: OperationOutcome): void {
    this.logger.debug(
      { operationId: operation.id, errorCode: error?.code },
      `operation ${operation.id} failed: ${error?.code} ${error?.message}`,
    );
  }
}
