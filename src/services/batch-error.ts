import { ErrorCode, IBatchErrorResponse } from '../interfaces/operation.interfaces';
import { isConnectionError } from './storage/database-error';

const HTTP_STATUS: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  UNKNOWN_TARGET: 400,
  UNKNOWN_COLUMN: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** An error with one of the contract's codes; transports turn it into their error shape. */
export class BatchError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }

  /** The error a handler answered (its toResponse()), as a BatchError again; anything else is INTERNAL. */
  static fromResponse(response: unknown): BatchError {
    const { status, code, message, details } = (response ?? {}) as Partial<IBatchErrorResponse>;
    if (status === 'error' && typeof code === 'string' && code in HTTP_STATUS)
      return new BatchError(code, String(message ?? code), details);
    return new BatchError('INTERNAL', 'Internal error');
  }

  toResponse(): IBatchErrorResponse {
    return {
      status: 'error',
      code: this.code,
      message: this.message,
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

/** Maps anything thrown to a BatchError: known ones as they are, database outages as UNAVAILABLE. */
/** VALIDATION_FAILED for one field, named in `details.problems` as the request validation names them. */
export function invalidField(field: string, message: string): BatchError {
  return new BatchError('VALIDATION_FAILED', `${field}: ${message}`, { problems: [{ field, message }] });
}

export function toBatchError(error: unknown): BatchError {
  if (error instanceof BatchError) return error;
  if (isConnectionError(error)) return new BatchError('UNAVAILABLE', 'The database is unavailable; retry later');
  return new BatchError('INTERNAL', 'Internal error');
}
