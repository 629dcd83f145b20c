import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type Redis from 'ioredis';
import { AppConfig } from '../../config/app-config';
import { IngestListener, StoredOperation } from '../../interfaces/ingest.interfaces';
import { channelOf, RedisService } from '../storage/redis.service';
import { PollerWakeup } from './poller-wakeup.service';

/**
 * Wakes the workers as soon as a chunk's worth of operations was stored (flush on size); smaller amounts wait
 * for the poll interval (flush on time), so that chunks stay full under load and latency stays within the
 * interval otherwise. This process's poller directly, other processes' over Redis (PollerWakeupSubscriber); without
 * Redis they poll on their interval.
 */
@Injectable()
export class PollerWakeupBroadcast extends IngestListener implements OnApplicationBootstrap {
  private publisher: Redis | null = null;
  private pending = false;
  private stored = 0;

  constructor(
    private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly local: PollerWakeup,
  ) {
    super();
  }

  onApplicationBootstrap(): void {
    this.publisher = this.redis.connect('publisher');
  }

  /** Operations were committed: once a chunk's worth has gathered, wake the pollers (remote ones with one message per tick at most). */
  afterCreate(operations: readonly StoredOperation[]): void {
    this.stored += operations.length;
    if (this.stored < this.config.poll.limit) return;
    this.stored = 0;
    this.local.notify();
    if (this.pending || !this.publisher || this.publisher.status !== 'ready') return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.publisher?.publish(channelOf(this.config), '1').catch(() => undefined);
    });
  }
}

/** A worker process's poller, woken by the other processes' broadcasts. */
@Injectable()
export class PollerWakeupSubscriber implements OnApplicationBootstrap {
  constructor(
    private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly local: PollerWakeup,
  ) {}

  onApplicationBootstrap(): void {
    const subscriber = this.redis.connect('wakeup-subscriber');
    subscriber.on('message', () => this.local.notify());
    subscriber.on('ready', () => void subscriber.subscribe(channelOf(this.config)).catch(() => undefined));
  }
}
