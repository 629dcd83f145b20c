import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idRuns, runParams } from '../../src/services/storage/id-runs';

describe('runs of consecutive ids', () => {
  it('finds them in order, whatever the order given and however large the ids', () => {
    assert.deepEqual(idRuns([]), []);
    assert.deepEqual(idRuns(['5', '3', '4', '9', '1']), [
      ['1', '1'],
      ['3', '5'],
      ['9', '9'],
    ]);
    assert.deepEqual(idRuns(['9007199254740993', '9007199254740992', '10']), [
      ['10', '10'],
      ['9007199254740992', '9007199254740993'],
    ]);
  });

  it('passes them as two array literals, the first ids and the last ids', () => {
    assert.deepEqual(runParams(['7', '8', '9', '11']), ['{7,11}', '{9,11}']);
    assert.deepEqual(runParams([]), ['{}', '{}']);
  });
});
