import { Injectable } from '@nestjs/common';

/** Wakes a sleeping loop as soon as there is work, instead of letting it wait out its interval. */
export class Wakeup {
  private waiters: (() => void)[] = [];

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves after `ms` or at the next notify(), whichever comes first. */
  sleep(ms: number): Promise<void> {
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

/** Notified when operations are stored (or retried): the poller has work. */
@Injectable()
export class PollerWakeup extends Wakeup {}

/** Notified when a chunk committed: the outbox relay has messages to publish. */
@Injectable()
export class OutboxWakeup extends Wakeup {}
