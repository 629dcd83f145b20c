import { Injectable } from '@nestjs/common';
import { ChunkListener } from '../../interfaces/chunk.interfaces';
import { Wakeup } from '../worker-loop';

/** Notified when a chunk committed: the outbox relay has messages to publish. */
@Injectable()
export class OutboxWakeup extends Wakeup {}

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
