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
 * waits), and after a full one BATCH_CHUNK_MAX_OPERATIONS until one is not full: a full chunk says a backlog waits,
 * and a chunk costs its claim, its statements' starts and its commit whatever its size, so large chunks spread them
 * (always within the chunk's byte budget); doubling up to it made the first chunks of every drain small.
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
    this.limit = full ? this.config.poll.maxLimit : this.config.poll.limit;
    return full;
  }

  protected afterFailure(): void {
    this.limit = this.config.poll.limit;
  }
}
