import { Injectable } from '@nestjs/common';
import { ChunkListener } from '../../interfaces/chunk.interfaces';

/**
 * Notified when notifications were written (a chunk committed, a job execution ended): the outbox relay, which
 * listens, has messages to publish.
 */
@Injectable()
export class OutboxWakeup {
  private listener: () => void = () => undefined;

  notify(): void {
    this.listener();
  }

  listen(listener: () => void): void {
    this.listener = listener;
  }
}

/** Wakes the outbox relay after each commit, so notifications leave at once. */
@Injectable()
export class OutboxWakeupListener extends ChunkListener {
  constructor(private readonly wakeup: OutboxWakeup) {
    super();
  }

  afterChunk(): void {
    this.wakeup.notify();
  }
}
