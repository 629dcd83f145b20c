import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IsInt, Min } from 'class-validator';
import { compose, ItemInvalid, validate, type StepRun } from '../../src/services/jobs';
import { backoffMs, isRetryable } from '../../src/services/jobs/toolkit/retry';
import { valueText } from '../../src/services/jobs/toolkit/writers';

const step = {} as StepRun;

describe('job toolkit, without a database', () => {
  it('back-off: initial × multiplier^(n−1), capped; jitter only ever takes off', () => {
    const backoff = { initialMs: 100, multiplier: 3, maxMs: 1000 };
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => backoffMs(backoff, n)),
      [100, 300, 900, 1000],
    );
    assert.equal(backoffMs(undefined, 3), 0);
    for (let i = 0; i < 50; i++) {
      const wait = backoffMs({ initialMs: 1000, jitter: 0.25 }, 1);
      assert.ok(wait >= 750 && wait <= 1000, `${wait}`);
    }
  });

  it('retry: by error class (subclasses included) or by predicate; none without a policy', () => {
    class Timeout extends Error {}
    class SlowTimeout extends Timeout {}
    const byClass = { on: [Timeout], limit: 3 };
    assert.ok(isRetryable(byClass, new SlowTimeout()));
    assert.ok(!isRetryable(byClass, new Error()));
    assert.ok(
      isRetryable({ on: (e: unknown) => (e as { code?: string }).code === '40001', limit: 2 }, { code: '40001' }),
    );
    assert.ok(!isRetryable(undefined, new Timeout()));
  });

  it('values as PostgreSQL reads their text', () => {
    assert.equal(valueText(null), null);
    assert.equal(valueText(undefined), null);
    assert.equal(valueText(new Date('2026-01-02T03:04:05.678Z')), '2026-01-02T03:04:05.678Z');
    assert.equal(valueText({ a: [1, 'x'] }), '{"a":[1,"x"]}');
    assert.equal(valueText(['a"b', 'c\\d', null, 'NULL']), '{"a\\"b","c\\\\d",NULL,"NULL"}');
    assert.equal(valueText([[1, 2], [3]]), '{{"1","2"},{"3"}}');
    assert.equal(valueText(Buffer.from([0, 255])), '\\x00ff');
    assert.equal(valueText(12345678901234567890n), '12345678901234567890');
  });

  it('compose stops at the first null; validate gives the DTO or every message', async () => {
    class Qty {
      @IsInt()
      @Min(1)
      qty: number;
    }
    const seen: unknown[] = [];
    const composed = compose(
      (n: number) => (n < 0 ? null : n * 2),
      (n: number) => (seen.push(n), { qty: n }),
      validate(Qty),
    );
    assert.equal(await composed(-1, step), null);
    assert.deepEqual(seen, []);
    const valid = await composed(2, step);
    assert.ok(valid instanceof Qty);
    assert.equal(valid.qty, 4);
    await assert.rejects(
      async () => composed(0, step),
      (error: unknown) => {
        assert.ok(error instanceof ItemInvalid);
        assert.equal(error.code, 'VALIDATION_FAILED');
        assert.equal(error.message, 'qty must not be less than 1');
        return true;
      },
    );
    assert.equal(await validate(Qty, { filter: true })({ qty: 'x' }, step), null);
  });
});
