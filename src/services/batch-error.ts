import { ErrorCode, IBatchErrorResponse } from '../interfaces/operation.interfaces';

const HTTP_STATUS: Record<ErrorCode, number> = {
  VALIDATION_FAILED: 400,
  UNKNOWN_TARGET: 400,
  UNKNOWN_COLUMN: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
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

  toResponse(): IBatchErrorResponse {
    return { status: 'error', code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) };
  }
}

/** SQLSTATE classes that mean the database could not be reached or is going away. */
const UNAVAILABLE_SQLSTATE = /^(08|57P0[1-3]|53)/;
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND']);

export function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  if (typeof e?.code === 'string' && (UNAVAILABLE_SQLSTATE.test(e.code) || UNAVAILABLE_NODE_CODES.has(e.code))) return true;
  const message = e?.message ?? '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(message);
}

/** Maps anything thrown to a BatchError: known ones as they are, database outages as UNAVAILABLE. */
export function toBatchError(error: unknown): BatchError {
  if (error instanceof BatchError) return error;
  if (isDatabaseUnavailable(error)) return new BatchError('UNAVAILABLE', 'The database is unavailable; retry later');
  return new BatchError('INTERNAL', 'Internal error');
}
