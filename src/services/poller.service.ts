import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import { AppConfig } from '../config/app-config';
import { BackOffPolicy } from '../interfaces/chunk.interfaces';
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
export class Poller implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(Poller.name);
  private running = false;
  private loop: Promise<void> | null = null;
  private readonly stopping = new AbortController();

  constructor(
    private readonly config: AppConfig,
    private readonly step: ChunkStep,
    private readonly wakeup: PollerWakeup,
    private readonly backOff: BackOffPolicy,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.role === 'api') return;
    this.running = true;
    this.loop = this.run();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  /** Takes no new chunk; resolves when the chunk in flight has committed or rolled back. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    this.wakeup.notify();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { limit: base, maxLimit } = this.config.poll;
    let limit = base;
    let failures = 0;
    while (this.running) {
      let full: boolean;
      try {
        full = (await this.step.execute(limit)).full;
        limit = full ? Math.min(maxLimit, limit * 2) : base;
        failures = 0;
      } catch (error) {
        failures += 1;
        limit = base;
        const backoff = this.backOff.delayMs(failures);
        this.logger.warn(`retrying in ${backoff} ms (attempt ${failures}): ${(error as Error).message}`);
        await delay(backoff, undefined, { signal: this.stopping.signal }).catch(() => undefined);
        continue;
      }
      if (!full && this.running) await this.wakeup.sleep(this.config.poll.intervalMs);
    }
  }
}
