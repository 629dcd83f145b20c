import { Injectable } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
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
export class ChunkRetryPolicy {
  constructor(private readonly config: AppConfig) {}

  /** True when `error` fails the chunk as a whole (rolled back, claimed again) rather than the operation at hand. */
  isRetryable(error: unknown): boolean {
    return isConnectionError(error) || isConcurrencyConflict(error);
  }

  /**
   * How many operations of a target to claim next after `failed` of them were in a chunk that failed as a whole for
   * the `failures`-th time: as many while retries are left, then fewer and fewer, down to one.
   */
  nextChunkSize(failed: number, failures: number): number {
    return failures <= this.config.poll.retryLimit ? failed : Math.ceil(failed / 2);
  }

  /** True when a chunk of `claimed` operations failed as a whole for the `failures`-th time is one that cannot be applied. */
  givesUp(claimed: number, failures: number): boolean {
    return claimed === 1 && failures > this.config.poll.retryLimit;
  }
}

/** Skips (fails) the operation on anything but a chunk-level error, up to BATCH_SKIP_LIMIT per execution. */
@Injectable()
export class DataErrorSkipPolicy {
  constructor(
    private readonly config: AppConfig,
    private readonly retryPolicy: ChunkRetryPolicy,
  ) {}

  /**
   * True when the operation that raised `error` should end FAILED while the chunk goes on; `skipped` is how many
   * operations this chunk has failed so far. False fails the whole chunk (rolled back, retried later).
   */
  shouldSkip(error: unknown, skipped: number): boolean {
    const limit = this.config.poll.skipLimit;
    return !this.retryPolicy.isRetryable(error) && (limit === null || skipped < limit);
  }
}

/** How long a target that failed as a whole is held back: backOffMs from the poll interval. */
@Injectable()
export class ExponentialBackOffPolicy {
  constructor(private readonly config: AppConfig) {}

  /** How long to wait before retry number `attempt` (1-based). */
  delayMs(attempt: number): number {
    return backOffMs(this.config.poll.intervalMs, attempt);
  }
}
