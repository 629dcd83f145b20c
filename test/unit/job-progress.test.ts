import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { progressOf, resumedContext } from '../../src/services/jobs/repository/job-progress';

const running = { worked: 10, sinceCommit: 0, running: true };

describe('job progress', () => {
  it('is a rate in the unit of done and total, whatever else the step counts', () => {
    // 40 MB of a 100 MB file in 10 s: 4 MB/s, 15 s left
    assert.deepEqual(progressOf({ unit: 'bytes', done: 40e6, total: 100e6 }, running), {
      unit: 'bytes',
      done: 40e6,
      total: 100e6,
      perSecond: 4e6,
      etaSeconds: 15,
    });
  });

  it("counts a restarted execution's own work only: what the one before did is its base", () => {
    const resumed = resumedContext({ offset: 60e6, progress: { unit: 'bytes', done: 60e6, total: 100e6, base: 0 } });
    assert.deepEqual(resumed, { offset: 60e6, progress: { unit: 'bytes', done: 60e6, total: 100e6, base: 60e6 } });
    // 20 MB more in 10 s: 2 MB/s, not 8 MB/s; the 20 MB left take 10 s
    const progress = progressOf({ unit: 'bytes', done: 80e6, total: 100e6, base: 60e6 }, running);
    assert.deepEqual([progress.perSecond, progress.etaSeconds], [2e6, 10]);
    assert.deepEqual(resumedContext({ position: '7' }), { position: '7' }, 'no progress, nothing to resume from');
  });

  it('counts the time left from the last commit; unknown once it ran out with work left', () => {
    const at = (sinceCommit: number) =>
      progressOf({ unit: 'rows', done: 500, total: 1000 }, { worked: 10, sinceCommit, running: true }).etaSeconds;
    assert.deepEqual([at(0), at(4), at(9.8), at(10), at(30)], [10, 6, 1, null, null]);
  });

  it('has a rate of 0 before a chunk committed, and no time left once the execution ended short of its total', () => {
    assert.deepEqual(progressOf({ unit: 'rows', done: 0, total: 1000 }, { ...running, worked: 0 }), {
      unit: 'rows',
      done: 0,
      total: 1000,
      perSecond: 0,
      etaSeconds: null,
    });
    const ended = { worked: 10, sinceCommit: 0, running: false };
    assert.deepEqual(
      [progressOf({ done: 400, total: 1000 }, ended).etaSeconds, progressOf({ done: 1000, total: 1000 }, ended)],
      [null, { unit: 'items', done: 1000, total: 1000, perSecond: 100, etaSeconds: 0 }],
    );
    assert.equal(progressOf({ done: 10, total: null }, running).etaSeconds, null, 'no total, no time left');
    assert.deepEqual(
      progressOf(null, { worked: 0, sinceCommit: 0, running: true }),
      { unit: 'items', done: 0, total: null, perSecond: 0, etaSeconds: null },
      'no step reported yet',
    );
  });
});
