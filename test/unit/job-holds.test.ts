import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Hold } from '../../src/services/jobs/job-runner.service';

describe('Hold.renewed', () => {
  it('loses what the renewal held and no longer holds, not a step taken while it ran', () => {
    const hold = new Hold('7');
    hold.steps.add('10');
    const began = [...hold.steps];
    hold.steps.add('11'); // taken while the renewal runs: its lease is the execution's, from the claim
    hold.renewed(began, { executions: new Map([['7', 'STARTED']]), steps: new Set(['10']) });
    assert.deepEqual([hold.lost, hold.stopping, [...hold.lostSteps]], [false, false, []]);

    hold.renewed([...hold.steps], { executions: new Map([['7', 'STOPPING']]), steps: new Set(['11']) });
    assert.deepEqual([hold.lost, hold.stopping, [...hold.lostSteps]], [false, true, ['10']]);

    hold.renewed([...hold.steps], { executions: new Map(), steps: new Set() });
    assert.equal(hold.lost, true);
  });

  it('does not lose a step that ended while the renewal ran', () => {
    const hold = new Hold(null);
    hold.steps.add('20');
    const began = [...hold.steps];
    hold.steps.delete('20');
    hold.renewed(began, { executions: new Map(), steps: new Set() });
    assert.deepEqual([hold.lost, [...hold.lostSteps]], [false, []]);
  });
});
