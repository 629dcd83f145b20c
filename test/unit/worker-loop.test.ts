import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { backOffMs, Wakeup, WorkerLoop } from '../../src/services/worker-loop';

describe('backOffMs', () => {
  it('doubles with each attempt from the base, less up to 20 % jitter, capped at 30 s', () => {
    for (const attempt of [1, 2, 3]) {
      const full = 50 * 2 ** attempt;
      for (let i = 0; i < 20; i++) {
        const ms = backOffMs(50, attempt);
        assert.ok(ms <= full && ms >= full * 0.8, `attempt ${attempt}: ${ms}`);
      }
    }
    assert.ok(backOffMs(50, 30) <= 30_000 && backOffMs(50, 30) >= 24_000);
  });
});

describe('Wakeup', () => {
  it('wakes a sleeper at once', async () => {
    const wakeup = new Wakeup();
    const started = Date.now();
    const sleeping = wakeup.sleep(10_000);
    wakeup.notify();
    await sleeping;
    assert.ok(Date.now() - started < 1000);
  });

  it('keeps a notice that came while nobody slept, for the next sleep only', async () => {
    const wakeup = new Wakeup();
    wakeup.notify();
    const started = Date.now();
    await wakeup.sleep(10_000);
    assert.ok(Date.now() - started < 1000, 'work that arrived during a turn does not wait for the interval');
    const second = Date.now();
    await wakeup.sleep(50);
    assert.ok(Date.now() - second >= 40, 'the notice was used up');
  });
});

/** A loop whose turns are scripted: each entry is what a turn returns, or an error it throws. */
class ScriptedLoop extends WorkerLoop {
  protected readonly logger = new Logger('test');
  readonly turns: number[] = [];
  failures = 0;

  constructor(
    private readonly script: (boolean | Error)[],
    wakeup: Wakeup,
  ) {
    super(wakeup, 20);
    Logger.overrideLogger(false);
  }

  protected turn(): Promise<boolean> {
    this.turns.push(Date.now());
    const next = this.script.shift() ?? false;
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  }

  protected afterFailure(): void {
    this.failures += 1;
  }
}

describe('WorkerLoop', () => {
  it('runs turns back to back while there is more, backs off after a failure, sleeps when idle, and stops', async () => {
    const loop = new ScriptedLoop([true, true, new Error('database down'), true, false], new Wakeup());
    loop.onApplicationBootstrap();
    await new Promise((resolve) => setTimeout(resolve, 150));
    await loop.stop();
    const gaps = loop.turns.slice(1).map((at, i) => at - loop.turns[i]);
    assert.ok(loop.turns.length >= 5, `${loop.turns.length} turns`);
    assert.ok(gaps[0] < 15 && gaps[1] < 15, `back to back: ${gaps.join(', ')}`);
    assert.ok(gaps[2] >= 25, `backed off (20 ms × 2, less jitter): ${gaps[2]}`);
    assert.equal(loop.failures, 1);
    const turns = loop.turns.length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(loop.turns.length, turns, 'no turn after stop');
  });
});
