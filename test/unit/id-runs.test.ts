import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  eachOperation,
  idBitmap,
  idRuns,
  isMarked,
  lastId,
  runParams,
  splitRun,
  taggedSpans,
} from '../../src/services/storage/id-runs';

/** Ids read per id of a group at most: itself and the 3 before it (SPAN_GAP). */
const SPAN_GAP_BOUND = 4;

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

  it('merges spans that meet, in or out of order, as the ids they hold one by one would', () => {
    const span = fc.record({ id: fc.integer({ min: 1, max: 200 }), count: fc.integer({ min: 1, max: 5 }) });
    // disjoint spans: each id in at most one
    const spans = fc.uniqueArray(span, { selector: (s) => s.id, maxLength: 40 }).map((all) => {
      const taken = new Set<number>();
      return all.filter(({ id, count }) => {
        const ids = Array.from({ length: count }, (_, k) => id + k);
        if (ids.some((i) => taken.has(i))) return false;
        ids.forEach((i) => taken.add(i));
        return true;
      });
    });
    fc.assert(
      fc.property(spans, (given) => {
        const ids = given
          .flatMap(({ id, count }) => Array.from({ length: count }, (_, k) => id + k))
          .sort((a, b) => a - b);
        const expected: [string, string][] = [];
        for (const id of ids) {
          const run = expected.at(-1);
          if (run && Number(run[1]) + 1 === id) run[1] = String(id);
          else expected.push([String(id), String(id)]);
        }
        assert.deepEqual(idRuns(given.map(({ id, count }) => ({ id: String(id), count }))), expected);
        assert.deepEqual(idRuns(ids.map(String).reverse()), expected);
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it('passes them as two array literals, the first ids and the last ids', () => {
    assert.deepEqual(runParams(['7', '8', '9', '11']), ['{7,11}', '{9,11}']);
    assert.deepEqual(runParams([]), ['{}', '{}']);
  });

  it('takes a round (ids listed, not consecutive) as its ids one by one', () => {
    const round = { id: '2', count: 3, ids: ['2', '6', '10'], bytes: 30, chars: 9 };
    assert.deepEqual(idRuns([round, { id: '3', count: 3 }]), [
      ['2', '6'],
      ['10', '10'],
    ]);
    assert.equal(lastId(round), '10');
    assert.deepEqual(splitRun(round, 2), [
      { id: '2', count: 2, ids: ['2', '6'], bytes: 20, chars: 6 },
      { id: '10', count: 1, ids: ['10'], bytes: 10, chars: 3 },
    ]);
    assert.deepEqual(
      eachOperation(round).map((op) => [op.id, op.count, op.ids, op.bytes]),
      [
        ['2', 1, undefined, 10],
        ['6', 1, undefined, 10],
        ['10', 1, undefined, 10],
      ],
    );
  });

  it('takes a run apart into its operations, ids exact past 2^53, bytes and chars shared out whole', () => {
    const run = { id: '9007199254740991', count: 3, bytes: 10, chars: 8 };
    assert.deepEqual(
      eachOperation(run).map((op) => [op.id, op.count, op.bytes, op.chars]),
      [
        ['9007199254740991', 1, 3, 3],
        ['9007199254740992', 1, 4, 2],
        ['9007199254740993', 1, 3, 3],
      ],
    );
  });

  it('reads tagged groups as ranges: runs a few ids apart as one, the ids between them tagged 0', () => {
    // A mixed stream's rounds: each row's insert, then its three changes (rounds 1 to 3) at the next ids.
    const round = (ids: string[]) => ({ id: ids[0], count: ids.length, ids });
    assert.deepEqual(
      taggedSpans([
        { spans: [round(['2', '6'])], tag: 1 },
        { spans: [round(['3', '7'])], tag: 2 },
        { spans: [round(['4', '8'])], tag: 3 },
      ]),
      ['{2}', '{8}', '{1,2,3,0,1,2,3}'],
    );
    assert.deepEqual(
      taggedSpans([
        { spans: [{ id: '10', count: 3 }], tag: 1 },
        { spans: [{ id: '17', count: 1 }], tag: 2 },
      ]),
      ['{10,17}', '{12,17}', '{1,1,1,2}'],
      'runs with 4 or more ids between them are ranges of their own',
    );
    assert.deepEqual(
      taggedSpans([
        { spans: [{ id: '9007199254740993', count: 2 }, '10'], tag: 1 },
        { spans: ['11'], tag: 2 },
      ]),
      ['{10,9007199254740993,11}', '{10,9007199254740994,11}', '{1,1,1,2}'],
      'ids past 15 digits: each run a range of its own, exactly',
    );
    assert.throws(
      () =>
        taggedSpans([
          { spans: ['5'], tag: 1 },
          { spans: ['5'], tag: 2 },
        ]),
      /given twice/,
    );
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 200 }), { maxLength: 40 }), (ids) => {
        const tagOf = (id: number) => (id % 3) + 1;
        const groups = [1, 2, 3].map((tag) => ({
          spans: ids.filter((id) => tagOf(id) === tag).map(String),
          tag,
        }));
        const [firsts, lasts, tags] = taggedSpans(groups).map((literal) =>
          literal === '{}' ? [] : literal.slice(1, -1).split(',').map(Number),
        );
        const read = firsts.flatMap((first, k) => Array.from({ length: lasts[k] - first + 1 }, (_, i) => first + i));
        assert.equal(read.length, tags.length);
        assert.ok(read.length <= ids.length * SPAN_GAP_BOUND, 'the ids between runs are bounded');
        read.forEach((id, i) => assert.equal(tags[i], ids.includes(id) ? tagOf(id) : 0));
        assert.deepEqual(
          read.filter((_, i) => tags[i] > 0).sort((a, b) => a - b),
          [...ids].sort((a, b) => a - b),
        );
      }),
    );
  });
});

describe('a bitmap of the ids of a run', () => {
  it('sets bit k, the lowest of each byte first, for the id k places after the first: as get_bit reads it', () => {
    assert.equal(idBitmap('10', '25', new Set(['10', '12', '19', '99'])), '0502');
    assert.equal(idBitmap('10', '25', new Set(['9', '26'])), null, 'none of its ids: none');
    assert.equal(idBitmap('10', '10', new Set()), null);
    assert.equal(idBitmap('9007199254740993', '9007199254741000', new Set(['9007199254741000'])), '80');
  });

  it('marks exactly the ids given, whatever they are', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.uniqueArray(fc.nat(70)), (first, offsets) => {
        const bitmap = idBitmap(String(first), String(first + 63), new Set(offsets.map((k) => String(first + k))));
        const marked = Array.from({ length: 64 }, (_, k) => bitmap !== null && isMarked(Buffer.from(bitmap, 'hex'), k));
        assert.deepEqual(
          marked.flatMap((m, k) => (m ? [k] : [])),
          offsets.filter((k) => k < 64).sort((a, b) => a - b),
        );
      }),
    );
  });
});
