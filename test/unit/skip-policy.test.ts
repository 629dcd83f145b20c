import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/app-config';
import { DataErrorSkipPolicy, ExponentialBackOffPolicy, TransientErrorRetryPolicy, isTransient } from '../../src/services/skip-policy.service';

const pgError = (code: string) => Object.assign(new Error(`error ${code}`), { code });

const TRANSIENT = ['40001', '40P01', '55P03', '08006'];
const DATA_ERRORS = ['23505', '23503', '23514', '22P02', '42703'];

describe('isTransient', () => {
  it('is true for serialization failure, deadlock, lock timeout and connection loss', () => {
    for (const code of [...TRANSIENT, '08000', '08003', '57014', '57P01', '53300']) {
      assert.equal(isTransient(pgError(code)), true, code);
    }
  });

  it('is false for data errors: unique, foreign key, check, cast, undefined column, and the like', () => {
    for (const code of [...DATA_ERRORS, '23502', '22003', '22001', '42P01', 'P0001', '21000']) {
      assert.equal(isTransient(pgError(code)), false, code);
    }
  });

  it("is true for errors that are not the database's answer", () => {
    assert.equal(isTransient(new Error('Connection terminated unexpectedly')), true);
    assert.equal(isTransient(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), true);
    assert.equal(isTransient(null), true);
    assert.equal(isTransient(undefined), true);
    assert.equal(isTransient({ code: 23505 }), true);
  });
});

describe('TransientErrorRetryPolicy', () => {
  const policy = new TransientErrorRetryPolicy();

  it('retries transient errors only', () => {
    for (const code of TRANSIENT) assert.equal(policy.isRetryable(pgError(code)), true, code);
    for (const code of DATA_ERRORS) assert.equal(policy.isRetryable(pgError(code)), false, code);
  });
});

describe('DataErrorSkipPolicy', () => {
  it('without a skip limit, skips every data error', () => {
    const policy = new DataErrorSkipPolicy(loadConfig({}));
    for (const code of DATA_ERRORS) assert.equal(policy.shouldSkip(pgError(code), 1_000_000), true, code);
  });

  it('never skips transient errors', () => {
    const policy = new DataErrorSkipPolicy(loadConfig({}));
    for (const code of TRANSIENT) assert.equal(policy.shouldSkip(pgError(code), 0), false, code);
    assert.equal(policy.shouldSkip(new Error('Connection terminated unexpectedly'), 0), false);
  });

  it('with BATCH_SKIP_LIMIT, skips while fewer than the limit have been skipped', () => {
    const policy = new DataErrorSkipPolicy(loadConfig({ BATCH_SKIP_LIMIT: '2' }));
    assert.equal(policy.shouldSkip(pgError('23505'), 0), true);
    assert.equal(policy.shouldSkip(pgError('23505'), 1), true);
    assert.equal(policy.shouldSkip(pgError('23505'), 2), false);
  });

  it('with BATCH_SKIP_LIMIT=0, skips nothing', () => {
    const policy = new DataErrorSkipPolicy(loadConfig({ BATCH_SKIP_LIMIT: '0' }));
    assert.equal(policy.shouldSkip(pgError('23505'), 0), false);
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
