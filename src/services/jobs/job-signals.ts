import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type Redis from 'ioredis';
import { AppConfig } from '../../config/app-config';
import { OutboxWakeup } from '../outbox/outbox-wakeup';
import { channelOf, RedisService } from '../storage/redis.service';
import { Wakeup } from '../worker-loop';

/** Wakes a worker process's job worker: there is an execution or a partition to claim. */
@Injectable()
export class JobWakeup extends Wakeup {}

/**
 * Tells the job workers at once that there is work (a launch, partitions made, an execution handed back): this
 * process's directly, the others' over Redis; without Redis they find it at their next poll
 * (BATCH_JOB_POLL_INTERVAL). And tells the outbox relay that an execution ended, so its notification leaves at once.
 */
@Injectable()
export class JobSignals implements OnApplicationBootstrap {
  private publisher: Redis | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly redis: RedisService,
    private readonly jobs: JobWakeup,
    private readonly outbox: OutboxWakeup,
  ) {}

  onApplicationBootstrap(): void {
    this.publisher = this.redis.connect('jobs-publisher');
    if (this.config.role === 'api') return;
    const subscriber = this.redis.connect('jobs-subscriber');
    subscriber.on('message', () => this.jobs.notify());
    subscriber.on('ready', () => void subscriber.subscribe(channelOf(this.config, 'jobs')).catch(() => undefined));
  }

  wake(): void {
    this.jobs.notify();
    if (this.publisher?.status === 'ready')
      this.publisher.publish(channelOf(this.config, 'jobs'), '1').catch(() => undefined);
  }

  finished(): void {
    this.outbox.notify();
  }
}
