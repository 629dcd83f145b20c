import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { binaryCopies, CopiedRows } from '../../src/services/copy/copied-rows';

/** COPY's binary format of `rows` (each a list of fields, null for NULL), with a header extension of `extension` bytes. */
function binaryCopy(rows: (Uint8Array | null)[][], extension: number): Buffer {
  const parts = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(4)];
  const number = (bytes: 2 | 4, value: number) => {
    const buffer = Buffer.alloc(bytes);
    if (bytes === 2) buffer.writeInt16BE(value);
    else buffer.writeInt32BE(value);
    return buffer;
  };
  parts.push(number(4, extension), Buffer.alloc(extension, 10));
  for (const row of rows) {
    parts.push(number(2, row.length));
    for (const field of row)
      parts.push(field === null ? number(4, -1) : Buffer.concat([number(4, field.length), field]));
  }
  parts.push(number(2, -1));
  return Buffer.concat(parts);
}

/** The rows CopiedRows counts in `data` passed through in pieces cut at `cuts`. */
async function counted(data: Buffer, cuts: number[], binary: boolean): Promise<number> {
  const at = [0, ...[...new Set(cuts.map((cut) => cut % (data.length + 1)))].sort((a, b) => a - b), data.length];
  const pieces = at
    .slice(1)
    .map((end, i) => data.subarray(at[i], end))
    .filter((piece) => piece.length > 0);
  const rows = new CopiedRows(binary);
  await pipeline(Readable.from(pieces), rows, async (passed: AsyncIterable<Buffer>) => {
    const out: Buffer[] = [];
    for await (const piece of passed) out.push(piece);
    assert.deepEqual(Buffer.concat(out), data, 'passed on as it came');
  });
  return rows.rows;
}

describe('rows of a COPY stream, counted as they pass', () => {
  it('counts the tuples of the binary format however the stream is cut (NULLs, empty rows, bytes that look like newlines)', async () => {
    const field = fc.option(fc.uint8Array({ maxLength: 20 }), { nil: null });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(field, { maxLength: 6 }), { maxLength: 30 }),
        fc.integer({ min: 0, max: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (rows, extension, cuts) => {
          assert.equal(await counted(binaryCopy(rows, extension), cuts, true), rows.length);
        },
      ),
    );
  });

  it('counts the lines of the text format however the stream is cut', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ unit: 'grapheme' }).map((s) => s.replace(/\n/g, ''))),
        fc.array(fc.nat()),
        async (lines, cuts) => {
          const data = Buffer.from(lines.map((line) => `${line}\n`).join(''));
          assert.equal(await counted(data, cuts, false), lines.length);
        },
      ),
    );
  });

  it('goes binary only where every column is one built-in type on both sides', () => {
    assert.equal(
      binaryCopies([
        ['integer', 'integer'],
        ['numeric', 'numeric'],
        ['timestamp with time zone', 'timestamp with time zone'],
      ]),
      true,
    );
    assert.equal(
      binaryCopies([
        ['text[]', 'text[]'],
        ['jsonb', 'jsonb'],
      ]),
      true,
    );
    assert.equal(binaryCopies([['integer', 'bigint']]), false, 'a different type reads its text');
    assert.equal(
      binaryCopies([
        ['integer', 'integer'],
        ['mood', 'mood'],
      ]),
      false,
      'a type of its own database',
    );
    assert.equal(binaryCopies([['bpchar', 'bpchar']]), false);
  });
});
