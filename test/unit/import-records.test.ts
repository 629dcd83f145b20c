import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { TargetColumn } from '../../src/interfaces/catalog.interfaces';
import { ByteWriter } from '../../src/services/byte-writer';
import { endMarkersQuoted } from '../../src/services/imports/formats/csv-format';
import { endedByLineFeed, lineEnds } from '../../src/services/imports/line-ends';
import { scanRecords } from '../../src/services/imports/record-scanner';
import { csvFields, flatRecordInto, ndjsonRecord, RecordKeys, RecordProblem } from '../../src/services/imports/records';

const QUOTE = '"'.charCodeAt(0);
/** What the scanner found, its offsets and lines as plain arrays. */
const plain = (scanned: ReturnType<typeof scanRecords>) => ({
  ...scanned,
  starts: [...scanned.starts],
  lines: [...scanned.lines],
});
const scan = (text: string, max = 100, atEnd = true, quote: number | null = QUOTE) =>
  plain(scanRecords(Buffer.from(text), 0, max, quote, atEnd, 1));

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
    const rest = plain(scanRecords(Buffer.from('1\n2\n3\n4\n'), first.end, 10, QUOTE, true, first.endLine));
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
        const whole = plain(scanRecords(data, 0, 1e9, QUOTE, true, 1));
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

  const column = (name: string, isArray = false, baseType = 'text') => ({ name, isArray, baseType }) as TargetColumn;
  const columns = new Map([
    ['id', column('id')],
    ['note', column('note')],
    ['tags', column('tags', true)],
    ['doc', column('doc', false, 'jsonb')],
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

  it('refuses a lone surrogate, which only an escape can make, as an operation does; a pair is a character', () => {
    // (inside a jsonb value it stays an escape, which PostgreSQL refuses: a reject either way)
    for (const text of ['{"note": "\\ud800"}', '{"note": "a\\udc00b"}'])
      assert.throws(() => ndjsonRecord(text, columns), { code: 'VALIDATION_FAILED' }, text);
    assert.equal(ndjsonRecord('{"note": "\\ud83d\\ude00"}', columns).line, '"\u{1F600}"\n');
  });

  it('writes a string into a json column as a JSON string, as an operation stores it', () => {
    assert.deepEqual(ndjsonRecord('{"doc": "hello", "note": "hello"}', columns), {
      columns: ['doc', 'note'],
      line: '"""hello""","hello"\n',
    });
    assert.equal(ndjsonRecord('{"doc": "42"}', columns).line, '"""42"""\n', 'the string "42", not the number');
  });

  it('refuses what is not an object of the columns', () => {
    for (const [text, code, column] of [
      ['{"id": 1', 'MALFORMED_JSON', null],
      ['[1, 2]', 'MALFORMED_JSON', null],
      ['7', 'MALFORMED_JSON', null],
      ['{"id": 1, "nope": 2}', 'UNKNOWN_COLUMN', 'nope'],
      ['{"id": 1, "nope": 2, "nope": 3}', 'UNKNOWN_COLUMN', 'nope'],
      ['{"id": 1, "id": 2}', 'DUPLICATE_KEY', 'id'],
      ['{"id": 1, "note": "a", "i\\u0064": 2}', 'DUPLICATE_KEY', 'id'],
      ['{"id": 1, "doc": {"a": [{"b": 1, "b": 2}]}}', 'DUPLICATE_KEY', 'doc'],
      [`{"doc": ${'['.repeat(64)}${']'.repeat(64)}}`, 'NESTED_TOO_DEEP', null],
      [`{"doc": ${'{"a":'.repeat(64)}1${'}'.repeat(64)}}`, 'NESTED_TOO_DEEP', null],
    ] as const) {
      assert.throws(
        () => ndjsonRecord(text, columns),
        (e: unknown) => e instanceof RecordProblem && e.code === code && e.column === column,
        text,
      );
    }
    assert.throws(() => ndjsonRecord(' {} ', columns), { code: 'VALIDATION_FAILED' }, 'no column: as an empty insert');
  });

  it('takes keys given once in each object, strings that look like keys or nesting, and 64 levels', () => {
    for (const text of [
      '{"id": 1, "doc": {"id": 2, "a": {"id": 3}}, "note": "\\"id\\": 4"}',
      '{"doc": [{"a": 1}, {"a": 2}], "note": "id\\":"}',
      `{"doc": ${'['.repeat(63)}${']'.repeat(63)}, "note": "${'['.repeat(100)}"}`,
    ])
      assert.doesNotThrow(() => ndjsonRecord(text, columns), text);
  });

  describe('flat records, written from their bytes', () => {
    const flat = (text: string, keys: RecordKeys = { names: [], bytes: [] }) => {
      const out = new ByteWriter();
      const data = Buffer.from(`${text}\n`);
      const names = flatRecordInto(data, 0, data.length, columns, out, keys);
      return names && { columns: names, line: out.data().toString() };
    };

    it('writes the line ndjsonRecord writes, or leaves the record to it', () => {
      const space = fc.constantFrom('', ' ', '  ', '\t', '\r');
      const key = fc.constantFrom('id', 'note', 'tags', 'doc', 'nope', '1', 'n"o', 'é');
      const value = fc.oneof(
        fc
          .string({ unit: fc.constantFrom('a', 'é', '😀', '"', '\\', '\n', ',', ' ', '\u0001') })
          .map((t) => JSON.stringify(t)),
        fc.constantFrom(
          '0',
          '-0',
          '7',
          '-12',
          '1.50',
          '0.1',
          '1.0',
          '0.0000001',
          '123456789012345',
          '1234567890123456',
        ),
        fc.constantFrom('1e2', '2E-3', '12345678901234567890.5', '01', '1.', '.5', '+1', '-', 'NaN'),
        fc.stringMatching(/^-?(0|[1-9]\d{0,16})(\.\d{1,8})?$/), // written as they are, or as String(Number()) writes them
        fc.constantFrom('true', 'false', 'null', 'nul', 'tru', '[1,"a"]', '{"x":1}', '[]'),
        fc.constantFrom('"a\tb"', '"x\u0001"', '"open'), // raw control characters, no end: not JSON
      );
      const field = fc
        .tuple(space, key, space, space, value, space)
        .map(([a, k, b, c, v, d]) => `${a}"${k}"${b}:${c}${v}${d}`);
      const record = fc
        .tuple(fc.array(field, { maxLength: 5 }), space, space, fc.constantFrom('', '', '', ',', '}', 'x'))
        .map(([fields, before, after, junk]) => `${before}{${fields.join(',')}}${junk}${after}`);
      fc.assert(
        fc.property(record, (text) => {
          const written = flat(text);
          if (written === null) return;
          assert.deepEqual(written, ndjsonRecord(text.trim(), columns));
        }),
        { numRuns: 2000 },
      );
    });

    it('takes the records most data sets hold, and the keys of the record before when they are the same', () => {
      const keys: RecordKeys = { names: [], bytes: [] };
      const first = flat('{"id":1,"note":"a b","doc":null, "tags": "x"}', keys);
      assert.deepEqual(first, { columns: ['id', 'note', 'doc', 'tags'], line: '1,"a b",,"x"\n' });
      const second = flat('{"id":2.50,"note":"é","doc":true,"tags":"y"}', keys);
      assert.deepEqual(second, { columns: ['id', 'note', 'doc', 'tags'], line: '2.5,"é",true,"y"\n' });
      assert.equal(second!.columns, first!.columns, 'the same names, not new ones');
      for (const text of ['{"id":1e2}', '{"note":"a\\"b"}', '{"id":[1]}', '{}', '{"id":1,"id":2}', '{"nope":1}'])
        assert.equal(flat(text), null, text);
    });
  });
});

describe('line ends', () => {
  const CR = 0x0d;
  /** Records of `text` as the scanner finds them, and what lineEnds says of them. */
  const ends = (text: string) => {
    const data = Buffer.from(text);
    const scanned = scanRecords(data, 0, 1e9, QUOTE, true, 1);
    const bounds = [...scanned.starts, scanned.end];
    return { data, bounds, ...lineEnds(data, bounds, QUOTE) };
  };

  it('rejects a carriage return outside quotes but at a line end; mixed line ends all become LF', () => {
    const text = 'a,b\n"c\rd",e\r\nf\rg\n"h\r\ni"\r\nj\r\r\nk\r';
    const { data, bounds, lone, mixed } = ends(text);
    assert.deepEqual([lone, mixed], [[2, 4], true]);
    const kept = [0, 1, 3, 5].map((i) => data.subarray(bounds[i], bounds[i + 1]));
    const starts = kept.map((_, i) => Buffer.concat(kept.slice(0, i + 1)).length);
    const even = endedByLineFeed(Buffer.concat(kept), [0, ...starts]);
    assert.equal(even.data.toString(), 'a,b\n"c\rd",e\n"h\r\ni"\nk');
    assert.deepEqual([...even.bounds], [0, 4, 12, 19, 20]);
    for (const uniform of ['a\r\nb\r\nc', 'a\nb\nc', 'a\r\n"b\r"\r\n'])
      assert.deepEqual([ends(uniform).lone, ends(uniform).mixed], [[], false], uniform);
  });

  it('says of each record what it says of it alone (property)', () => {
    const field = fc.oneof(
      fc.string({ unit: fc.constantFrom('a', '\r', '\n', '"', ',') }).map((s) => `"${s.replace(/"/g, '""')}"`),
      fc.string({ unit: fc.constantFrom('a', '\r', ' ') }),
    );
    const record = fc.tuple(fc.array(field, { minLength: 1, maxLength: 3 }), fc.constantFrom('\n', '\r\n'));
    fc.assert(
      fc.property(fc.array(record, { minLength: 1, maxLength: 8 }), (records) => {
        const text = records.map(([fields, end]) => fields.join(',') + end).join('');
        const whole = ends(text);
        const alone = whole.bounds.slice(0, -1).map((start, i) => {
          const record = whole.data.subarray(start, whole.bounds[i + 1]);
          return lineEnds(record, [0, record.length], QUOTE).lone.length > 0;
        });
        assert.deepEqual(
          whole.lone,
          alone.flatMap((lone, i) => (lone ? [i] : [])),
        );
        const cr = (i: number) => whole.data[whole.bounds[i + 1] - 2] === CR;
        const kept = whole.bounds.slice(0, -1).flatMap((_, i) => (whole.lone.includes(i) ? [] : [cr(i)]));
        assert.equal(whole.mixed, new Set(kept).size > 1);
      }),
    );
  });
});

describe("COPY's end-of-data marker", () => {
  /** Records of `lines`, one a line, after `before` bytes of something else in the buffer. */
  const recordsOf = (lines: string[], before = 'zz') => {
    const bounds = [before.length];
    for (const line of lines) bounds.push(bounds[bounds.length - 1] + Buffer.byteLength(line));
    const data = Buffer.from(before + lines.join(''));
    return { data, bounds, lines: lines.map((_, i) => i + 1), origin: () => assert.fail('not read') };
  };
  const texts = (records: { data: Buffer; bounds: ArrayLike<number> }) =>
    Array.from({ length: records.bounds.length - 1 }, (_, i) =>
      records.data.subarray(records.bounds[i], records.bounds[i + 1]).toString(),
    );

  it('quotes a record that is \\. alone on its line, whatever its line end; \\. within a record stays', () => {
    const lines = ['1,a\n', '\\.\n', '2,\\.\n', '\\.\r\n', '\\.x\n', '"\\."\n', '\\.'];
    const quoted = endMarkersQuoted(recordsOf(lines), 0x27);
    assert.deepEqual(texts(quoted), ['1,a\n', "'\\.'\n", '2,\\.\n', "'\\.'\r\n", '\\.x\n', '"\\."\n', "'\\.'"]);
    const none = recordsOf(['1,a\n', '2,\\.\n']);
    assert.equal(endMarkersQuoted(none, 0x22), none, 'none: the records as they were');
  });
});
