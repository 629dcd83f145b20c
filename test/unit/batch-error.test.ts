import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ERROR_CODES, ErrorCode } from '../../src/interfaces/operation.interfaces';
import { BatchError, toBatchError } from '../../src/services/batch-error';
import { isConnectionError } from '../../src/services/storage/database-error';

describe('BatchError', () => {
  it('maps every code to the HTTP status of docs/api.md#errors, 408 for a body that stalls', () => {
    const expected: Record<ErrorCode, number> = {
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
    for (const code of ERROR_CODES) assert.equal(new BatchError(code, 'm').httpStatus, expected[code], code);
  });

  it('is an Error carrying code, message and details', () => {
    const error = new BatchError('RATE_LIMITED', 'Too many requests', { retryAfterMs: 250 });
    assert.ok(error instanceof Error);
    assert.equal(error.code, 'RATE_LIMITED');
    assert.equal(error.message, 'Too many requests');
    assert.deepEqual(error.details, { retryAfterMs: 250 });
  });

  it('toResponse() gives {status: "error", code, message, details}', () => {
    const response = new BatchError('RATE_LIMITED', 'Too many requests', { retryAfterMs: 250 }).toResponse();
    assert.deepEqual(response, {
      status: 'error',
      code: 'RATE_LIMITED',
      message: 'Too many requests',
      details: { retryAfterMs: 250 },
    });
  });

  it('toResponse() leaves details out when there are none', () => {
    const response = new BatchError('NOT_FOUND', 'No operation 5').toResponse();
    assert.deepEqual(response, { status: 'error', code: 'NOT_FOUND', message: 'No operation 5' });
    assert.equal(Object.hasOwn(response, 'details'), false);
    assert.equal(JSON.stringify(response), '{"status":"error","code":"NOT_FOUND","message":"No operation 5"}');
  });

  it('toResponse() keeps falsy details such as null and 0', () => {
    assert.deepEqual(new BatchError('CONFLICT', 'x', null).toResponse(), {
      status: 'error',
      code: 'CONFLICT',
      message: 'x',
      details: null,
    });
    assert.deepEqual(new BatchError('CONFLICT', 'x', 0).toResponse(), {
      status: 'error',
      code: 'CONFLICT',
      message: 'x',
      details: 0,
    });
  });
});

describe('toBatchError', () => {
  it('returns a BatchError unchanged', () => {
    const error = new BatchError('FORBIDDEN', 'no');
    assert.equal(toBatchError(error), error);
  });

  it('maps connection errors to UNAVAILABLE (503)', () => {
    const connectionErrors: unknown[] = [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }),
      Object.assign(new Error('getaddrinfo ENOTFOUND db'), { code: 'ENOTFOUND' }),
      Object.assign(new Error('broken pipe'), { code: 'EPIPE' }),
      { code: '08006', message: 'connection failure' },
      { code: '08001', message: 'could not connect' },
      { code: '57P01', message: 'terminating connection due to administrator command' },
      { code: '57P03', message: 'the database system is starting up' },
      { code: '53300', message: 'sorry, too many clients already' },
      { code: '25006', message: 'cannot execute INSERT in a read-only transaction' }, // a standby after a failover
      { code: '28P01', message: 'password authentication failed for user "svc"' },
      { code: '3D000', message: 'database "billing" does not exist' },
      Object.assign(new Error('getaddrinfo EAI_AGAIN db'), { code: 'EAI_AGAIN' }),
      Object.assign(new Error('connect ENETUNREACH'), { code: 'ENETUNREACH' }),
      new Error('Connection terminated unexpectedly'),
      new Error('Connection terminated due to connection timeout'),
      new Error('Client has encountered a connection error and is not queryable'),
      new Error('timeout exceeded when trying to connect'), // pg-pool: every connection busy, none to be had
    ];
    for (const error of connectionErrors) {
      const mapped = toBatchError(error);
      assert.equal(mapped.code, 'UNAVAILABLE', String((error as Error).message));
      assert.equal(mapped.httpStatus, 503);
      assert.ok(isConnectionError(error));
    }
  });

  it('maps anything else to INTERNAL (500) without leaking its message', () => {
    const others: unknown[] = [
      new Error('secret internal detail'),
      { code: '23505', message: 'duplicate key value' },
      { code: '42P01', message: 'relation "x" does not exist' },
      'a string',
      null,
      undefined,
      42,
    ];
    for (const error of others) {
      const mapped = toBatchError(error);
      assert.equal(mapped.code, 'INTERNAL', String(error));
      assert.equal(mapped.httpStatus, 500);
      assert.doesNotMatch(mapped.message, /secret|duplicate|relation/);
      assert.equal(isConnectionError(error), false);
    }
  });
});
