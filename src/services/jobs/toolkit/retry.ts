/**
 * Spring Batch's retry of a fault-tolerant chunk step: an error the author names is tried again, up to `limit`
 * attempts in all, waiting longer each time; what still fails is then skipped within `skipLimit`.
 */
export interface RetryPolicy {
  /** The errors tried again: instances of these classes, or those the predicate accepts. */
  on: (abstract new (...args: never[]) => unknown)[] | ((error: unknown) => boolean);
  /** Attempts at most, the first included (Spring Batch's retryLimit). */
  limit: number;
  backoff?: Backoff;
}

/** An exponential back-off: `initialMs`, times `multiplier` at each attempt, at most `maxMs`. */
export interface Backoff {
  initialMs: number;
  /** Default 2. */
  multiplier?: number;
  /** Default 30 s. */
  maxMs?: number;
  /** The share of the wait (0 to 1) drawn at random and taken off it, so that failed steps do not retry in step. */
  jitter?: number;
}

export function isRetryable(policy: RetryPolicy | undefined, error: unknown): boolean {
  if (!policy) return false;
  if (typeof policy.on === 'function') return policy.on(error);
  return policy.on.some((type) => error instanceof type);
}

/** The wait before the attempt after `failures` failed ones (1 for the first retry). */
export function backoffMs(backoff: Backoff | undefined, failures: number): number {
  if (!backoff) return 0;
  const { initialMs, multiplier = 2, maxMs = 30_000, jitter = 0 } = backoff;
  const wait = Math.min(initialMs * multiplier ** (failures - 1), maxMs);
  return Math.round(wait * (1 - Math.random() * Math.min(Math.max(jitter, 0), 1)));
}

/**
 * Thrown by a chunk step to have its chunk rolled back and run again after `delayMs`: the runner waits outside any
 * transaction (a back-off never holds a chunk's transaction, its locks or its connection) and counts a rollback.
 */
export class ChunkRetry extends Error {
  constructor(
    readonly delayMs: number,
    cause: unknown,
  ) {
    super(`chunk tried again in ${delayMs} ms`, { cause });
  }
}
