import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IngestBuffer } from '../../src/services/ingest/ingest-buffer.service';
import type { ValidOperation } from '../../src/services/ingest/operation-validator.service';
import type { Database } from '../../src/services/storage/database';

const insert = { target: 'public.t', type: 'insert', values: { id: 1 } } as unknown as ValidOperation;
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A database whose flushes run until the test ends them; each answers every row it was given as stored. */
function heldDatabase() {
  const flushes: { rows: number; end(): void }[] = [];
  const db = {
    query: (_statement: unknown, [text]: [string]) =>
      new Promise((resolve) => {
        const requests = JSON.parse(text) as { operations: unknown[] }[];
        const rows = requests.flatMap((request, r) =>
          request.operations.map((_, i) => ({
            id: '1',
            created_at: '2026-11-23 12:00:00+00',
            submission: r + 1,
            request_index: i,
          })),
        );
        flushes.push({ rows: rows.length, end: () => resolve(rows) });
      }),
  };
  return { flushes, buffer: new IngestBuffer(db as unknown as Database) };
}

describe('IngestBuffer', () => {
  it('gathers single creates into one flush at a time, and stores what fills a flush (bulk) alongside', async () => {
    const { flushes, buffer } = heldDatabase();
    const first = buffer.store('1', 'a', [insert]);
    await turn();
    assert.deepEqual(
      flushes.map((f) => f.rows),
      [1],
    );

    const singles = ['b', 'c', 'd'].map((id) => buffer.store('1', id, [insert]));
    await turn();
    assert.equal(flushes.length, 1, 'creates wait while a flush gathers');
    const bulk = buffer.store(
      '2',
      'e',
      Array.from({ length: 1000 }, () => insert),
    );
    await turn();
    await turn();
    assert.deepEqual(
      flushes.map((f) => f.rows),
      [1, 3, 1000],
      'a full flush does not wait; the creates before it go first',
    );

    flushes.forEach((flush) => flush.end());
    assert.equal((await first).length, 1);
    assert.equal((await Promise.all(singles)).flat().length, 3);
    assert.equal((await bulk).filter((row) => row?.status === 'PENDING').length, 1000);

    const later = buffer.store('1', 'f', [insert]);
    await turn();
    assert.equal(flushes.length, 4, 'the next gathering flush starts once none gathers');
    flushes[3].end();
    assert.equal((await later)[0]?.status, 'PENDING');
  });
});
