import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BytesInFlight } from '../../src/controllers/bytes-in-flight';
import { BatchError } from '../../src/services/batch-error';

describe('BytesInFlight', () => {
  it('admits requests while their bytes fit, one alone always, and refuses the rest with RATE_LIMITED', () => {
    const budget = new BytesInFlight(100);
    const huge = budget.admit(1000);
    assert.throws(
      () => budget.admit(1),
      (error: BatchError) =>
        error.code === 'RATE_LIMITED' && (error.details as { retryAfterMs: number }).retryAfterMs > 0,
    );
    huge();
    huge(); // a release counts once
    const first = budget.admit(60);
    budget.admit(40)();
    assert.throws(() => budget.admit(41), BatchError);
    first();
    budget.admit(100);
  });

  it('lets RPC messages wait their turn, in order, each admitted as the bytes before it are released', async () => {
    const budget = new BytesInFlight(100);
    const order: string[] = [];
    const first = budget.acquire(80) as () => void;
    const second = (budget.acquire(50) as Promise<() => void>).then((release) => (order.push('second'), release));
    const third = (budget.acquire(10) as Promise<() => void>).then((release) => (order.push('third'), release));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, [], 'nothing passes one that waits');
    assert.throws(() => budget.admit(1), BatchError, 'nor does a REST request');
    first();
    (await second)();
    (await third)();
    assert.deepEqual(order, ['second', 'third']);
    budget.admit(100);
  });
});
