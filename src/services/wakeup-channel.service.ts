import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type Redis from 'ioredis';
import { AppConfig } from '../config/app-config';
import { IngestListener } from '../interfaces/ingest.interfaces';
import type { AuthenticatedClient } from './client.service';
import type { ValidOperation } from './operation-validator.service';
import { PollerWakeup } from './poller-wakeup.service';
import { RedisService } from './redis.service';

/**
 * Wakes the workers as soon as a chunk's worth of operations was stored (flush on size); smaller amounts wait
 * for the poll interval (flush on time), so that chunks stay full under load and latency stays within the
 * interval otherwise. Other processes are woken over a Redis channel named after the database (so that
 * services on different databases never wake each other); without Redis they poll on their interval.
 */
@Injectable()
export class WakeupChannel extends IngestListener implements OnApplicationBootstrap {
  private publisher: Redis | null = null;
  private pending = false;
  private stored = 0;
  private readonly channel: string;

  constructor(
    private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly local: PollerWakeup,
  ) {
    super();
    this.channel = `batch-service:${config.db.host}:${config.db.port}:${config.db.name}:wakeup`;
  }

  onApplicationBootstrap(): void {
    this.publisher = this.redis.connect('publisher');
    if (this.config.role === 'api') return;
    const subscriber = this.redis.connect('wakeup-subscriber');
    subscriber.on('message', () => this.local.notify());
    subscriber.on('ready', () => void subscriber.subscribe(this.channel).catch(() => undefined));
  }

  /** Operations were committed: once a chunk's worth has gathered, wake the pollers (remote ones with one message per tick at most). */
  afterCreate(_client: AuthenticatedClient, operations: ValidOperation[]): void {
    this.stored += operations.length;
    if (this.stored < this.config.poll.limit) return;
    this.stored = 0;
    this.local.notify();
    if (this.pending || !this.publisher || this.publisher.status !== 'ready') return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.publisher?.publish(this.channel, '1').catch(() => undefined);
    });
  }
}
