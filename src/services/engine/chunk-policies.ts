import { Injectable } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import { BackOffPolicy, RetryPolicy, SkipPolicy } from '../../interfaces/chunk.interfaces';
import { isConcurrencyConflict, isConnectionError } from '../storage/database-error';
import { backOffMs } from '../worker-loop';

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

/** How long a target that failed as a whole is held back: backOffMs from the poll interval. */
@Injectable()
export class ExponentialBackOffPolicy extends BackOffPolicy {
  constructor(private readonly config: AppConfig) {
    super();
  }

  delayMs(attempt: number): number {
    return backOffMs(this.config.poll.intervalMs, attempt);
  }
}
