import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import type Redis from 'ioredis';
import { AppConfig } from '../../config/app-config';
import { BatchError } from '../batch-error';
import type { AuthenticatedClient } from './client.service';
import { RedisService } from '../storage/redis.service';

/**
 * A token bucket per client, atomic in Redis: refills at `rate` tokens per second up to `rate` (one second's
 * worth). A request costs its number of operations; one larger than the bucket may run the bucket into debt
 * once it is full, so a slow client can still send a bulk request and then waits it off.
 * Returns 0 when allowed, else the milliseconds until it would be.
 */
const TOKEN_BUCKET = `
local rate = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local now = redis.call('TIME')
local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or rate
local at = tonumber(state[2]) or t
tokens = math.min(rate, tokens + (t - at) * rate / 1000)
local wait = 0
if tokens >= math.min(cost, rate) then tokens = tokens - cost else wait = math.ceil((math.min(cost, rate) - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', t)
redis.call('PEXPIRE', KEYS[1], 2000 + math.ceil(math.max(0, -tokens) * 1000 / rate))
return wait`;

/** Per-client rate limits (the client's rateLimitPerSecond, else BATCH_DEFAULT_RATE_LIMIT); fails open without Redis. */
@Injectable()
export class RateLimiter implements OnApplicationBootstrap {
  private redis: Redis | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly connections: RedisService,
  ) {}

  onApplicationBootstrap(): void {
    this.redis = this.connections.connect('rate-limiter');
    this.redis.defineCommand('tokenBucket', { numberOfKeys: 1, lua: TOKEN_BUCKET });
  }

  /** Takes `cost` tokens from the client's bucket; RATE_LIMITED with details.retryAfterMs when there are too few. */
  async consume(client: AuthenticatedClient, cost: number): Promise<void> {
    const rate = client.rateLimitPerSecond ?? this.config.limits.defaultRateLimitPerSecond;
    if (rate === null || !this.redis || this.redis.status !== 'ready') return;
    const key = `batch-service:${this.config.db.name}:rate:${client.id}`;
    let wait: number;
    try {
      wait = await (
        this.redis as Redis & { tokenBucket(key: string, rate: number, cost: number): Promise<number> }
      ).tokenBucket(key, rate, cost);
    } catch {
      return; // fail open: Redis trouble never blocks callers
    }
    if (wait > 0)
      throw new BatchError(
        'RATE_LIMITED',
        `Client "${client.name}" is over its rate limit of ${rate} operations per second`,
        { retryAfterMs: wait },
      );
  }
}
