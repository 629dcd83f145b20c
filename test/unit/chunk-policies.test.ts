import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/app-config';
import {
  ChunkRetryPolicy,
  DataErrorSkipPolicy,
  ExponentialBackOffPolicy,
} from '../../src/services/engine/chunk-policies';

const pgError = (code: string) => Object.assign(new Error(`error ${code}`), { code });

const CHUNK_LEVEL = ['40001', '40P01', '55P03', '57014', '08006', '08000', '57P01', '53300', '53200', '53400'];
const DATA_ERRORS = ['23505', '23503', '23514', '22P02', '42703', '23502', '22003', '22001', '42P01', 'P0001', '21000'];

describe('ChunkRetryPolicy', () => {
  const policy = new ChunkRetryPolicy(loadConfig({ BATCH_CHUNK_RETRY_LIMIT: '3' }));

  it('fails the chunk as a whole on connection loss and on conflicts with other transactions only', () => {
    for (const code of CHUNK_LEVEL) assert.equal(policy.isRetryable(pgError(code)), true, code);
    assert.equal(policy.isRetryable(new Error('Connection terminated unexpectedly')), true);
    assert.equal(policy.isRetryable(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true);
  });

  it('fails the operation at hand on anything else: what the database refuses, and errors of the service', () => {
    for (const code of DATA_ERRORS) assert.equal(policy.isRetryable(pgError(code)), false, code);
    for (const error of [
      new RangeError('Invalid string length'),
      new TypeError('x is undefined'),
      null,
      undefined,
      { code: 23505 },
    ]) {
      assert.equal(policy.isRetryable(error), false, String(error));
    }
  });

  it('claims as many again while retries are left, then halves what failed with each further failure, down to one', () => {
    assert.deepEqual(
      [1, 2, 3].map((failures) => policy.nextChunkSize(1000, failures)),
      [1000, 1000, 1000],
    );
    assert.deepEqual(
      [1000, 500, 7, 2, 1].map((failed) => policy.nextChunkSize(failed, 4)),
      [500, 250, 4, 1, 1],
    );
  });

  it('gives up on an operation alone in its chunk once the retries are spent, and never on a larger chunk', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((failures) => policy.givesUp(1, failures)),
      [false, false, false, true],
    );
    assert.equal(policy.givesUp(2, 40), false);
  });
});

describe('DataErrorSkipPolicy', () => {
  const skipPolicy = (env: Record<string, string> = {}) => {
    const config = loadConfig(env);
    return new DataErrorSkipPolicy(config, new ChunkRetryPolicy(config));
  };

  it('without a skip limit, skips every error tied to the operation', () => {
    const policy = skipPolicy();
    for (const code of DATA_ERRORS) assert.equal(policy.shouldSkip(pgError(code), 1_000_000), true, code);
    assert.equal(policy.shouldSkip(new RangeError('Invalid string length'), 0), true);
  });

  it('never skips what fails the chunk as a whole', () => {
    const policy = skipPolicy();
    for (const code of CHUNK_LEVEL) assert.equal(policy.shouldSkip(pgError(code), 0), false, code);
    assert.equal(policy.shouldSkip(new Error('Connection terminated unexpectedly'), 0), false);
  });

  it('with BATCH_SKIP_LIMIT, skips while fewer than the limit have been skipped', () => {
    const policy = skipPolicy({ BATCH_SKIP_LIMIT: '2' });
    assert.equal(policy.shouldSkip(pgError('23505'), 0), true);
    assert.equal(policy.shouldSkip(pgError('23505'), 1), true);
    assert.equal(policy.shouldSkip(pgError('23505'), 2), false);
  });

  it('with BATCH_SKIP_LIMIT=0, skips nothing', () => {
    assert.equal(skipPolicy({ BATCH_SKIP_LIMIT: '0' }).shouldSkip(pgError('23505'), 0), false);
  });
});

describe('ExponentialBackOffPolicy', () => {
  const policy = new ExponentialBackOffPolicy(loadConfig({ BATCH_PROCESS_OPERATION_INTERVAL: '100' }));

  it('doubles with each attempt, less up to 20 % jitter', () => {
    for (const attempt of [1, 2, 3, 4]) {
      const base = 100 * 2 ** attempt;
      for (let i = 0; i < 50; i++) {
        const delay = policy.delayMs(attempt);
        assert.ok(delay <= base && delay >= base * 0.8, `attempt ${attempt}: ${delay} not in [${base * 0.8}, ${base}]`);
      }
    }
  });

  it('is capped at 30 seconds', () => {
    for (let i = 0; i < 50; i++) {
      const delay = policy.delayMs(20);
      assert.ok(delay <= 30_000 && delay >= 24_000, String(delay));
    }
  });

  it('varies, so that workers do not retry in step', () => {
    const delays = new Set(Array.from({ length: 50 }, () => policy.delayMs(8)));
    assert.ok(delays.size > 1);
  });
});
