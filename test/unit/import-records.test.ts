import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { TargetColumn } from '../../src/interfaces/catalog.interfaces';
import { scanRecords } from '../../src/services/imports/record-scanner';
import { csvFields, ndjsonRecord, RecordProblem } from '../../src/services/imports/records';

const QUOTE = '"'.charCodeAt(0);
const scan = (text: string, max = 100, atEnd = true, quote: number | null = QUOTE) =>
  scanRecords(Buffer.from(text), 0, max, quote, atEnd, 1);

describe('the record scanner', () => {
  it('ends a record at a newline outside quotes; a quoted newline belongs to its field', () => {
    const text = 'a,"x\ny",1\r\nb,"say ""hi""\n",2\nc,,3';
    const scanned = scan(text);
    assert.deepEqual(scanned.starts, [0, 11, 29]);
    assert.deepEqual(scanned.lines, [1, 3, 5]);
    assert.deepEqual([scanned.end, scanned.endLine, scanned.unterminated], [text.length, 5, false]);
  });

  it('stops before a record the buffer cuts, unless the file ends there; says when a quote is left open', () => {
    assert.deepEqual(scan('a,1\nb,"open\n', 100, false), {
      starts: [0],
      lines: [1],
      end: 4,
      endLine: 2,
      unterminated: false,
    });
    const atEnd = scan('a,1\nb,"open\n');
    assert.deepEqual([atEnd.starts, atEnd.unterminated, atEnd.endLine], [[0, 4], true, 3]);
  });

  it('takes at most max records and goes on from where it stopped', () => {
    const first = scan('1\n2\n3\n4\n', 2);
    assert.deepEqual([first.starts, first.end, first.endLine], [[0, 2], 4, 3]);
    const rest = scanRecords(Buffer.from('1\n2\n3\n4\n'), first.end, 10, QUOTE, true, first.endLine);
    assert.deepEqual(
      [rest.starts, rest.lines],
      [
        [4, 6],
        [3, 4],
      ],
    );
  });

  it('reads NDJSON as lines: quotes mean nothing', () => {
    assert.deepEqual(scan('{"a":"x"}\n{"a":"\\""}\n', 10, true, null).starts, [0, 10]);
  });

  it('finds the same records in any cut of the data into buffers (property)', () => {
    const field = fc.oneof(
      fc.string({ unit: fc.constantFrom('a', ',', '\n', '"', 'é', ' ') }).map((s) => `"${s.replace(/"/g, '""')}"`),
      fc.string({ unit: fc.constantFrom('a', 'b', ' ', '7') }),
    );
    const file = fc.array(fc.array(field, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(file, fc.integer({ min: 1, max: 7 }), (rows, max) => {
        const text = rows.map((row) => row.join(',') + '\n').join('');
        const data = Buffer.from(text);
        const whole = scanRecords(data, 0, 1e9, QUOTE, true, 1);
        assert.equal(whole.starts.length, rows.length);
        const starts: number[] = [];
        for (let from = 0, line = 1; from < data.length;) {
          const part = scanRecords(data, from, max, QUOTE, true, line);
          starts.push(...part.starts);
          [from, line] = [part.end, part.endLine];
        }
        assert.deepEqual(starts, whole.starts);
      }),
    );
  });
});

describe('records', () => {
  it('splits a CSV header with RFC 4180 quoting', () => {
    assert.deepEqual(csvFields('id,"a ""b""",c;d,"x,y"\r', ',', '"'), ['id', 'a "b"', 'c;d', 'x,y']);
    assert.deepEqual(csvFields("id;'n;m'", ';', "'"), ['id', 'n;m']);
  });

  const column = (name: string, isArray = false) => ({ name, isArray }) as TargetColumn;
  const columns = new Map([
    ['id', column('id')],
    ['note', column('note')],
    ['tags', column('tags', true)],
    ['doc', column('doc')],
  ]);

  it('makes an NDJSON record a CSV line: numbers exact, null as NULL, objects as JSON, arrays as array literals', () => {
    assert.deepEqual(
      ndjsonRecord(
        '{"id": 12345678901234567890.5, "note": "say \\"hi\\"\\n", "tags": ["a,b", null, 3], "doc": {"x": [1]}}',
        columns,
      ),
      {
        columns: ['id', 'note', 'tags', 'doc'],
        line: '12345678901234567890.5,"say ""hi""\n","{""a,b"",NULL,""3""}","{""x"":[1]}"\n',
      },
    );
    assert.deepEqual(ndjsonRecord('{"note": null, "id": true}', columns), { columns: ['note', 'id'], line: ',true\n' });
  });

  it('refuses what is not an object of the columns', () => {
    for (const [text, code, column] of [
      ['{"id": 1', 'MALFORMED_JSON', null],
      ['[1, 2]', 'MALFORMED_JSON', null],
      ['7', 'MALFORMED_JSON', null],
      ['{"id": 1, "nope": 2}', 'UNKNOWN_COLUMN', 'nope'],
    ] as const) {
      assert.throws(
        () => ndjsonRecord(text, columns),
        (e: unknown) => e instanceof RecordProblem && e.code === code && e.column === column,
        text,
      );
    }
  });
});
