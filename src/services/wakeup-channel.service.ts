import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type Redis from 'ioredis';
import { AppConfig } from '../config/app-config';
import { PollerWakeup } from './poller-wakeup.service';
import { RedisService } from './redis.service';

/**
 * Wakes the workers of every process when operations are stored, over a Redis channel named after the
 * database (so that services on different databases never wake each other). Without Redis, workers in other
 * processes simply poll on their interval; the process that stored the operations is woken in memory anyway.
 */
@Injectable()
export class WakeupChannel implements OnApplicationBootstrap {
  private publisher: Redis | null = null;
  private pending = false;
  private readonly channel: string;

  constructor(
    private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly local: PollerWakeup,
  ) {
    this.channel = `batch-service:${config.db.host}:${config.db.port}:${config.db.name}:wakeup`;
  }

  onApplicationBootstrap(): void {
    this.publisher = this.redis.connect('publisher');
    if (this.config.role === 'api') return;
    const subscriber = this.redis.connect('wakeup-subscriber');
    subscriber.on('message', () => this.local.notify());
    subscriber.on('ready', () => void subscriber.subscribe(this.channel).catch(() => undefined));
  }

  /** New work was committed: wake the local poller now, the others with one message per tick at most. */
  notify(): void {
    this.local.notify();
    if (this.pending || !this.publisher || this.publisher.status !== 'ready') return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.publisher?.publish(this.channel, '1').catch(() => undefined);
    });
  }
}
