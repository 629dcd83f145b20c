import type { ErrorCode } from '../interfaces/operation.interfaces';

/**
 * An error answered by the Batch Service (docs/api.md#errors in the service's repository); or, from this client, TIMEOUT when no answer
 * came in time, DISCONNECTED when the broker connection was lost before the answer. After either, the request
 * may or may not have been stored: repeat it with the same idempotencyKey to find out without a duplicate.
 */
export class BatchServiceError extends Error {
  constructor(
    readonly code: ErrorCode | 'TIMEOUT' | 'DISCONNECTED',
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}
