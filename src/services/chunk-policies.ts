import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { BackOffPolicy, RetryPolicy, SkipPolicy } from '../interfaces/chunk.interfaces';
import { isConcurrencyConflict, isConnectionError } from './database-error';

/**
 * Losing the database connection, or meeting other transactions (serialization failure, deadlock, lock timeout,
 * statement cancelled), fails the chunk as a whole: it is rolled back and claimed again. Anything else an operation
 * meets — whatever the database refuses, and errors of the service while planning or running it — fails only that
 * operation. A chunk that fails as a whole is retried BATCH_CHUNK_RETRY_LIMIT times, then split in halves until the
 * operations that cannot be applied are alone, and each of those ends FAILED.
 */
@Injectable()
export class ChunkRetryPolicy extends RetryPolicy {
  constructor(private readonly config: AppConfig) {
    super();
  }

  isRetryable(error: unknown): boolean {
    return isConnectionError(error) || isConcurrencyConflict(error);
  }

  nextChunkSize(failed: number, failures: number): number {
    return failures <= this.config.poll.retryLimit ? failed : Math.ceil(failed / 2);
  }

  givesUp(claimed: number, failures: number): boolean {
    return claimed === 1 && failures > this.config.poll.retryLimit;
  }
}

/** Skips (fails) the operation on anything but a chunk-level error, up to BATCH_SKIP_LIMIT per execution. */
@Injectable()
export class DataErrorSkipPolicy extends SkipPolicy {
  constructor(
    private readonly config: AppConfig,
    private readonly retryPolicy: RetryPolicy,
  ) {
    super();
  }

  shouldSkip(error: unknown, skipped: number): boolean {
    const limit = this.config.poll.skipLimit;
    return !this.retryPolicy.isRetryable(error) && (limit === null || skipped < limit);
  }
}

const MAX_BACKOFF_MS = 30_000;

/** Exponential: interval × 2^attempt, capped at 30 s, with up to 20 % jitter so that workers do not retry in step. */
@Injectable()
export class ExponentialBackOffPolicy extends BackOffPolicy {
  constructor(private readonly config: AppConfig) {
    super();
  }

  delayMs(attempt: number): number {
    const base = Math.min(this.config.poll.intervalMs * 2 ** attempt, MAX_BACKOFF_MS);
    return Math.round(base * (1 - Math.random() * 0.2));
  }
}
