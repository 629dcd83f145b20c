import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';
import { AppConfig } from '../config/app-config';
import { BackOffPolicy } from '../interfaces/chunk.interfaces';
import { ChunkStep } from './chunk-step.service';
import { PollerWakeup } from './poller-wakeup.service';

/**
 * The worker loop: runs chunks back to back while they come back full (drain), sleeps the interval (or until
 * woken) when idle, and backs off exponentially while chunks fail.
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
    let failures = 0;
    while (this.running) {
      let full: boolean;
      try {
        const { read } = await this.step.execute();
        full = read >= this.config.poll.limit;
        failures = 0;
      } catch (error) {
        failures += 1;
        const backoff = this.backOff.delayMs(failures);
        this.logger.warn(`retrying in ${backoff} ms (attempt ${failures}): ${(error as Error).message}`);
        await delay(backoff, undefined, { signal: this.stopping.signal }).catch(() => undefined);
        continue;
      }
      if (!full && this.running) await this.wakeup.sleep(this.config.poll.intervalMs);
    }
  }
}
