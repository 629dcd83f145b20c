import type { BeforeApplicationShutdown, LoggerService, OnApplicationBootstrap } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';

const MAX_BACKOFF_MS = 30_000;

/**
 * Exponential back-off: base × 2^attempt, capped at `maxMs` (30 s unless given), less up to 20 % jitter so that
 * processes do not retry in step.
 */
export function backOffMs(baseMs: number, attempt: number, maxMs = MAX_BACKOFF_MS): number {
  return Math.round(Math.min(baseMs * 2 ** attempt, maxMs) * (1 - Math.random() * 0.2));
}

/**
 * Wakes a sleeping loop as soon as there is work, instead of letting it wait out its interval. A notice that comes
 * while the loop is busy is kept, so that its next sleep returns at once: work that arrives during a turn is not left
 * waiting for the interval.
 */
export class Wakeup {
  private waiters: (() => void)[] = [];
  private noticed = false;

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    this.noticed = waiters.length === 0;
    for (const wake of waiters) wake();
  }

  /** Resolves after `ms` or at the next notify(), whichever comes first; at once if notified since the last sleep. */
  sleep(ms: number): Promise<void> {
    if (this.noticed) {
      this.noticed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.push(done);
    });
  }
}

/**
 * A worker process's background loop (the poller, the outbox relay): runs turns back to back while there is more to
 * do, sleeps the interval (or until woken) when there is not, and backs off exponentially while turns fail. Runs
 * from the application's bootstrap to its shutdown; stop() lets the turn in flight finish.
 */
export abstract class WorkerLoop implements OnApplicationBootstrap, BeforeApplicationShutdown {
  protected abstract readonly logger: Pick<LoggerService, 'warn'>;
  private running = false;
  private loop: Promise<void> | null = null;
  private readonly stopping = new AbortController();

  protected constructor(
    protected readonly wakeup: Wakeup,
    private readonly intervalMs: number,
  ) {}

  /** One turn of work; resolves true when there is more to do at once. */
  protected abstract turn(): Promise<boolean>;

  /** Called when a turn failed, before the back-off. */
  protected afterFailure(): void {}

  onApplicationBootstrap(): void {
    this.running = true;
    this.loop = this.run();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  /** Takes no new turn; resolves when the turn in flight has finished. */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    this.wakeup.notify();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      let more: boolean;
      try {
        more = await this.turn();
        failures = 0;
      } catch (error) {
        failures += 1;
        this.afterFailure();
        const backoff = backOffMs(this.intervalMs, failures);
        this.logger.warn(`retrying in ${backoff} ms (attempt ${failures}): ${(error as Error).message}`);
        await delay(backoff, undefined, { signal: this.stopping.signal }).catch(() => undefined);
        continue;
      }
      if (!more && this.running) await this.wakeup.sleep(this.intervalMs);
    }
  }
}
