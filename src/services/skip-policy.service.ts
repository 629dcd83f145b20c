import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { BackOffPolicy, RetryPolicy, SkipPolicy } from '../interfaces/chunk.interfaces';

/**
 * Transient SQLSTATEs: serialization failure, deadlock, lock timeout, statement cancelled, admin shutdown,
 * connection failures and insufficient resources. These roll the chunk back to be retried; anything else the
 * database refuses is the operation's own fault and ends it FAILED.
 */
const TRANSIENT_SQLSTATE = /^(40001|40P01|55P03|57014|57P0[1-3]|08...|53...)$/;

export function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== 'string') return true; // not the database's answer: the connection or the process is at fault
  return TRANSIENT_SQLSTATE.test(code) || !/^[0-9A-Z]{5}$/.test(code);
}

/** Retries the chunk on transient errors (isTransient). */
@Injectable()
export class TransientErrorRetryPolicy extends RetryPolicy {
  isRetryable(error: unknown): boolean {
    return isTransient(error);
  }
}

/** Skips (fails) the operation on data errors — constraint, cast, check, foreign key, trigger — up to BATCH_SKIP_LIMIT per execution. */
@Injectable()
export class DataErrorSkipPolicy extends SkipPolicy {
  constructor(private readonly config: AppConfig) {
    super();
  }

  shouldSkip(error: unknown, skipped: number): boolean {
    const limit = this.config.poll.skipLimit;
    return !isTransient(error) && (limit === null || skipped < limit);
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
