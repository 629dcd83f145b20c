import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eachOperation, operationCount, splitRun } from '../../src/services/storage/id-runs';
import { claimedId } from '../support/claimed';

describe('runs of claimed operations (storage/id-runs)', () => {
  const run = claimedId('9007199254740990', { count: 4, bytes: 10, chars: 33 });

  it('counts the operations of runs, and cuts a run keeping every byte and char', () => {
    assert.equal(operationCount([run, claimedId('1')]), 5);
    const [head, rest] = splitRun(run, 3);
    assert.deepEqual([head.id, head.count, rest!.id, rest!.count], ['9007199254740990', 3, '9007199254740993', 1]);
    assert.equal(head.bytes + rest!.bytes, 10);
    assert.equal(head.chars + rest!.chars, 33);
    assert.deepEqual(splitRun(run, 4), [run, null]);
  });

  it('takes a run apart into its operations in order of id', () => {
    const operations = eachOperation(run);
    assert.deepEqual(
      operations.map((o) => [o.id, o.count]),
      ['9007199254740990', '9007199254740991', '9007199254740992', '9007199254740993'].map((id) => [id, 1]),
    );
    assert.equal(
      operations.reduce((sum, o) => sum + o.bytes, 0),
      10,
    );
    assert.deepEqual(eachOperation(claimedId('7')), [claimedId('7')]);
  });
});
