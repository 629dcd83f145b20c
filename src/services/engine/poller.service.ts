import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { WorkerLoop } from '../worker-loop';
import { ChunkStep } from './chunk-step.service';
import { PollerWakeup } from './poller-wakeup.service';
import { DatabaseLanes } from './database-lanes';

/**
 * The worker loop: runs chunks back to back while they come back full (drain), sleeps the interval (or until
 * woken) when idle, and backs off exponentially while the database cannot be reached.
 *
 * Chunks are sized to the backlog: BATCH_PROCESS_OPERATION_LIMIT while the queue is short (small chunks, short
 * waits), and after a full one BATCH_CHUNK_MAX_OPERATIONS until one is not full: a full chunk says a backlog waits,
 * and a chunk costs its claim, its statements' starts and its commit whatever its size, so large chunks spread them
 * (always within the chunk's byte budget); doubling up to it made the first chunks of every drain small.
 *
 * A chunk for another database is finished in that database's lane (DatabaseLanes) while the loop goes on with the
 * others: one that stops answering holds back nothing but its own operations.
 */
@Injectable()
export class Poller extends WorkerLoop {
  protected readonly logger = new Logger(Poller.name);
  private limit: number;
  /** Chunks for other databases, finished beside the turns; a lane that finishes one wakes the loop. */
  private readonly lanes = new DatabaseLanes(this.logger, () => this.wakeup.notify());

  constructor(
    private readonly config: AppConfig,
    private readonly step: ChunkStep,
    wakeup: PollerWakeup,
  ) {
    super(wakeup, config.poll.intervalMs);
    this.limit = config.poll.limit;
  }

  protected async turn(): Promise<boolean> {
    const { full } = await this.step.execute(this.limit, this.lanes);
    this.limit = full || this.lanes.backlog() ? this.config.poll.maxLimit : this.config.poll.limit;
    return full;
  }

  /** Takes no new turn; resolves when the turn in flight and the chunks in the lanes have finished. */
  async stop(): Promise<void> {
    await super.stop();
    await this.lanes.idle();
  }

  protected afterFailure(): void {
    this.limit = this.config.poll.limit;
  }
}
