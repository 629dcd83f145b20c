import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { AppConfig } from '../../config/app-config';

/**
 * Redis holds only optional, shared state (rate limits, wake-ups). The service works without it: every caller
 * treats a failed command as "no answer" and falls back, and an outage is logged once, not per retry.
 */
@Injectable()
export class RedisService implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  private readonly connections: Redis[] = [];
  private down = false;

  constructor(private readonly config: AppConfig) {}

  /** A new connection (a subscriber needs one of its own), reconnecting forever with a capped delay. */
  connect(name: string): Redis {
    const redis = new Redis(this.config.redisUrl, {
      connectionName: `batch-service:${name}`,
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (attempt) => Math.min(attempt * 200, 5000),
    });
    redis.on('error', (error: Error) => this.markDown(error));
    redis.on('ready', () => this.markUp());
    this.connections.push(redis);
    return redis;
  }

  get available(): boolean {
    return !this.down && this.connections.some((c) => c.status === 'ready');
  }

  private markDown(error: Error): void {
    if (this.down) return;
    this.down = true;
    this.logger.warn(`Redis unavailable (${error.message}): rate limits fail open, workers poll on their interval`);
  }

  private markUp(): void {
    if (!this.down) return;
    this.down = false;
    this.logger.warn('Redis is back');
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.connections.map((c) => c.quit().catch(() => c.disconnect())));
  }
}

/**
 * A Redis channel of one service's processes (`wakeup` for pollers, `jobs` for job workers): named after the database,
 * so services on others never wake these.
 */
export function channelOf(config: AppConfig, name = 'wakeup'): string {
  return `batch-service:${config.db.host}:${config.db.port}:${config.db.name}:${name}`;
}
