import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { WorkerLoop } from '../worker-loop';
import { ChunkStep } from './chunk-step.service';
import { PollerWakeup } from './poller-wakeup.service';

/**
 * The worker loop: runs chunks back to back while they come back full (drain), sleeps the interval (or until
 * woken) when idle, and backs off exponentially while the database cannot be reached.
 *
 * Chunks are sized to the backlog: BATCH_PROCESS_OPERATION_LIMIT while the queue is short (small chunks, short
 * waits), twice as many after each full one while a backlog drains, up to BATCH_CHUNK_MAX_OPERATIONS: a commit costs
 * as much as thousands of rows, and large chunks spread it (always within the chunk's byte budget).
 */
@Injectable()
export class Poller extends WorkerLoop {
  protected readonly logger = new Logger(Poller.name);
  private limit: number;

  constructor(
    private readonly config: AppConfig,
    private readonly step: ChunkStep,
    wakeup: PollerWakeup,
  ) {
    super(wakeup, config.poll.intervalMs);
    this.limit = config.poll.limit;
  }

  protected async turn(): Promise<boolean> {
    const { full } = await this.step.execute(this.limit);
    this.limit = full ? Math.min(this.config.poll.maxLimit, this.limit * 2) : this.config.poll.limit;
    return full;
  }

  protected afterFailure(): void {
    this.limit = this.config.poll.limit;
  }
}
