import assert from 'node:assert/strict';
import fc from 'fast-check';
import { describe, it } from 'node:test';
import type { JsonValue } from '../../src/interfaces/operation.interfaces';
import type { TargetColumn } from '../../src/interfaces/catalog.interfaces';
import { column } from '../support/catalog-fixtures';
import {
  columnValueProblem,
  isNumericColumn,
  roundedIntegerDigits,
  scalarText,
} from '../../src/services/ingest/column-value';
import { canonicalValue } from '../../src/services/ingest/row-identity';
import { ExactJsonValue, JsonNumber } from '../../src/services/exact-json';

/** A column as the catalog would describe it; `baseType` is the element type's for arrays. */
const col = (baseType: string, options: Partial<TargetColumn> = {}): TargetColumn => column('c', baseType, options);

const numeric = (precision: number, scale: number) =>
  col('numeric', { sqlType: `numeric(${precision},${scale})`, typmod: ((precision << 16) | (scale & 0x7ff)) + 4 });
const varchar = (n: number) =>
  col('varchar', { sqlType: `character varying(${n})`, castType: 'character varying', typmod: n + 4 });
const bpchar = (n: number) => col('bpchar', { sqlType: `character(${n})`, castType: 'character', typmod: n + 4 });
const arrayOf = (baseType: string, options: Partial<TargetColumn> = {}) =>
  col(baseType, { sqlType: `${baseType}[]`, castType: `${baseType}[]`, isArray: true, ...options });

function accepts(column: TargetColumn, ...values: ExactJsonValue[]): void {
  for (const value of values) {
    assert.equal(columnValueProblem(column, value), null, `${column.sqlType} should accept ${JSON.stringify(value)}`);
  }
}

function rejects(column: TargetColumn, expected: RegExp, ...values: ExactJsonValue[]): void {
  for (const value of values) {
    const problem = columnValueProblem(column, value);
    assert.notEqual(problem, null, `${column.sqlType} should reject ${JSON.stringify(value)}`);
    assert.match(problem!, expected, `${column.sqlType} / ${JSON.stringify(value)}`);
  }
}

describe('columnValueProblem: null', () => {
  it('leaves null to the caller for every type', () => {
    for (const column of [col('int4'), numeric(4, 2), col('text'), col('uuid'), arrayOf('int4'), col('jsonb')]) {
      assert.equal(columnValueProblem(column, null), null);
    }
  });
});

describe('columnValueProblem: integers', () => {
  it('int2 accepts its whole range and rejects one past either end', () => {
    const int2 = col('int2', { sqlType: 'smallint' });
    accepts(int2, -32768, 32767, 0, '-32768', '32767', ' 12 ', '+5');
    rejects(int2, /out of range for smallint/, -32769, 32768, '32768', '-32769');
  });

  it('int4 accepts its whole range and rejects one past either end', () => {
    const int4 = col('int4', { sqlType: 'integer' });
    accepts(int4, 2147483647, -2147483648, '2147483647');
    rejects(int4, /out of range for integer/, 2147483648, -2147483649, '2147483648');
  });

  it('int8 takes bigints as strings, exactly to the last unit', () => {
    const int8 = col('int8', { sqlType: 'bigint' });
    accepts(int8, '9223372036854775807', '-9223372036854775808', 9007199254740991);
    rejects(int8, /out of range for bigint/, '9223372036854775808', '-9223372036854775809', '99999999999999999999');
  });

  it('takes JSON numbers exactly, beyond 2^53 too, and refuses them out of range', () => {
    const int8 = col('int8', { sqlType: 'bigint' });
    accepts(int8, 2 ** 53, new JsonNumber('9007199254740993'), new JsonNumber('-9223372036854775808'), 1e18);
    rejects(int8, /out of range for bigint/, 2 ** 63, new JsonNumber('9223372036854775808'), 1e21);
    rejects(int8, /expects an integer/, new JsonNumber('9007199254740993.5'), new JsonNumber('1.0000000000000000001'));
  });

  it('a safe integer is judged and written as the same number given as its JSON text', () => {
    const columns = ['int2', 'int4', 'int8'].map((type) => col(type));
    const edges = [0, -0, 1, -1, 32767, 32768, -32768, -32769, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1];
    fc.assert(
      fc.property(
        fc.oneof(fc.constantFrom(...edges, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER), fc.maxSafeInteger()),
        (n) => {
          const exact = new JsonNumber(String(n));
          assert.equal(scalarText(n), scalarText(exact));
          for (const column of columns) {
            assert.equal(columnValueProblem(column, n), columnValueProblem(column, exact));
            assert.equal(canonicalValue(column, n), canonicalValue(column, exact as unknown as JsonValue));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("reads text as PostgreSQL's integer input does: ASCII white space only", () => {
    const int4 = col('int4', { sqlType: 'integer' });
    accepts(int4, ' 12 ', '\t12\n', '\v\f12\r');
    rejects(int4, /expects an integer/, '\u00a012', '12\u2008', '\u202812', '\ufeff12', '12\u3000');
  });

  it('rejects fractions, non-numeric text, booleans, objects and arrays', () => {
    const int4 = col('int4', { sqlType: 'integer' });
    rejects(int4, /expects an integer \(integer\)/, 1.5, '1.0', '1e3', 'abc', '', true);
    rejects(int4, /expects a scalar value/, { a: 1 }, [1]);
  });

  it('accepts an integral JSON number written with a fraction', () => {
    accepts(col('int4'), 3.0, -0);
  });
});

describe('roundedIntegerDigits', () => {
  const cases: [string, number, number][] = [
    ['99.995', 2, 3], // rounds up to 100.00
    ['99.994', 2, 2],
    ['-99.995', 2, 3],
    ['9.5', 0, 2], // 10
    ['9.4', 0, 1],
    ['0.5', 0, 1], // rounds half away from zero, to 1
    ['0.4', 0, -Infinity], // rounds to zero
    ['0.995', 2, 1], // 1.00
    ['0.05', 1, 0], // 0.1
    ['0.005', 1, -Infinity],
    ['0', 2, -Infinity],
    ['0.000', 2, -Infinity],
    ['.5', 0, 1],
    ['5.', 0, 1],
    ['000123.4', 1, 3],
    ['1e3', 0, 4],
    ['1.5E2', 0, 3],
    ['0.5e1', 0, 1],
    ['0.05e3', 0, 2],
    ['123e-5', 2, -Infinity], // 0.00
    ['0.00012', 5, -3],
    ['1234', -1, 4], // 1230
    ['99.5e-1', 1, 2], // 9.95 → 10.0
    ['19.99', 1, 2], // 20.0
    ['12345678901234567890.4', 0, 20],
    ['99999999999999999999.5', 0, 21],
  ];
  for (const [text, scale, expected] of cases) {
    it(`${text} at scale ${scale} has ${expected} integer digits`, () => {
      assert.equal(roundedIntegerDigits(text, scale), expected);
    });
  }
});

describe('columnValueProblem: numeric(p,s)', () => {
  it('numeric(2,5) holds only values below 0.001, and numeric(3,-1) rounds to tens below 10000', () => {
    accepts(numeric(2, 5), '0.00012', 0, '-0.00099');
    rejects(numeric(2, 5), /out of range/, '0.001', 1);
    accepts(numeric(3, -1), '1234', 9994, -9994);
    rejects(numeric(3, -1), /out of range/, 9995, '12345');
  });

  it('99.995 overflows numeric(4,2) once rounded; 99.994 does not', () => {
    const n = numeric(4, 2);
    rejects(n, /out of range for numeric\(4,2\)/, 99.995, '99.995', '-99.995', 100, '1e2');
    accepts(n, 99.994, '99.994', -99.99, 0, '0.001', '1e1', 12.3456);
  });

  it('numeric(3,0) rounds 999.5 up to 1000 and overflows', () => {
    rejects(numeric(3, 0), /out of range/, 999.5);
    accepts(numeric(3, 0), 999.4, '-999');
  });

  it('numeric(2,2) holds 0.99 but not 0.995 (1.00)', () => {
    accepts(numeric(2, 2), 0.99, '0.994', '-0.99');
    rejects(numeric(2, 2), /out of range/, 0.995, 1);
  });

  it('large precision takes values JSON numbers cannot represent, as strings', () => {
    const n = numeric(30, 10);
    accepts(n, '12345678901234567890.1234567890');
    rejects(n, /out of range/, '123456789012345678901.1');
  });

  it('unconstrained numeric takes any number PostgreSQL holds, exactly', () => {
    const n = col('numeric');
    accepts(n, '1e400', '123456789012345678901234567890.123', 1e300, new JsonNumber('0.1234567890123456789'));
    accepts(n, new JsonNumber('1e131071'), '1e-16383', '1'.repeat(1001));
    rejects(n, /131072 digits before/, new JsonNumber('1e131072'), '1e131072');
    rejects(n, /16383 digits after/, '1e-16384', new JsonNumber('1.5e-16383'));
  });

  it('refuses NaN and the infinities, which numeric holds but no check or sum means anything with', () => {
    for (const column of [col('numeric'), numeric(5, 2)])
      rejects(column, /takes no NaN or infinity/, 'NaN', '+NaN', '-Infinity', 'Infinity', ' inf ', '-inf');
  });

  it('rejects text that is not a number', () => {
    rejects(numeric(4, 2), /expects a number \(numeric\(4,2\)\)/, 'abc', '1.2.3', '', '1e', true, '\u00a01.5');
  });
});

describe('columnValueProblem: float4 / float8', () => {
  it('float8 takes numbers, numeric text and the special values (IEEE 754 values, as PostgreSQL takes them)', () => {
    accepts(col('float8'), 1.5, '-2.5e10', 'NaN', '+NaN', 'Infinity', '-inf', 1.7976931348623157e308);
    accepts(col('float8'), new JsonNumber('0.1234567890123456789'), ' 1.5 ');
  });

  it('float8 reads text as PostgreSQL does: ASCII white space only', () => {
    rejects(col('float8'), /expects a number/, '\u00a01.5', '1.5\u2028', '\ufeff1.5');
  });

  it('float8 rejects text beyond its range', () => {
    rejects(
      col('float8', { sqlType: 'double precision' }),
      /out of range for double precision/,
      '1e309',
      '-1e400',
      new JsonNumber('1e400'),
    );
  });

  it('float4 rejects magnitudes beyond 3.4028234663852886e38', () => {
    const real = col('float4', { sqlType: 'real' });
    accepts(real, 3.4e38, -3.4e38, '1e38');
    rejects(real, /out of range for real/, 1e39, '-3.5e38');
  });

  it('rejects text that is not a number', () => {
    rejects(col('float8'), /expects a number/, 'abc', '', true, '0x10');
  });
});

describe('columnValueProblem: bool', () => {
  it('takes booleans and PostgreSQL boolean words', () => {
    accepts(col('bool'), true, false, 't', 'TRUE', 'yes', 'off', '0', ' on ');
  });

  it('rejects anything else', () => {
    rejects(col('bool', { sqlType: 'boolean' }), /expects a boolean \(boolean\)/, 'maybe', 2, '', 'truthy', '\u00a0on');
  });
});

describe('columnValueProblem: uuid', () => {
  it('takes the forms PostgreSQL reads', () => {
    accepts(
      col('uuid'),
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
      '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
      'a0eebc999c0b4ef8bb6d6bb9bd380a11',
      'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11',
    );
  });

  it('rejects other text and non-strings', () => {
    rejects(
      col('uuid'),
      /expects a UUID/,
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1',
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111',
      'g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      '',
      12345,
    );
  });
});

describe('columnValueProblem: date / timestamp / timestamptz / time', () => {
  it('date takes real calendar dates, leap days and infinity', () => {
    accepts(col('date'), '2026-02-28', '2024-02-29', '2000-02-29', '0001-01-01', 'infinity', '-infinity');
  });

  it('date rejects impossible calendar dates', () => {
    rejects(
      col('date'),
      /expects a date/,
      '2026-02-30',
      '2026-02-29',
      '1900-02-29',
      '2026-13-01',
      '2026-00-10',
      '2026-04-31',
      '0000-01-01',
    );
  });

  it('date rejects other formats and non-strings', () => {
    rejects(col('date'), /expects a date/, 'not a date', '2026/01/05x', 20260105, '');
  });

  it('timestamp takes ISO-8601 date-times, with or without a zone (PostgreSQL ignores it)', () => {
    accepts(
      col('timestamp'),
      '2026-11-21T06:00:00.000Z',
      '2026-11-21 06:00:00',
      '2026-11-21T06:00',
      '2026-11-21',
      '2026-11-21T06:00:00.123456+05:30',
      '2026-11-21T06:00:00-0800',
      '2026-11-21T24:00:00',
      'infinity',
    );
  });

  it('takes time zone offsets up to 15:59 either way, as PostgreSQL does', () => {
    accepts(col('timestamptz'), '2026-01-01T00:00:00+15:59', '2026-01-01T00:00:00-1559', '2026-01-01T00:00:00+14');
    rejects(
      col('timestamptz'),
      /with a time zone/,
      '2026-01-01T00:00:00+16:00',
      '2026-01-01T00:00:00+14:60',
      '2026-01-01T00:00:00+99',
    );
    rejects(col('timestamp'), /ISO-8601/, '2026-01-01T00:00:00+16:00');
    rejects(col('timetz'), /expects a time/, '08:00:00+16:00', '08:00:00+14:60');
  });

  it('takes infinity and -infinity for dates and timestamps, not +infinity', () => {
    for (const type of ['date', 'timestamp', 'timestamptz']) {
      accepts(col(type), 'infinity', '-infinity', 'Infinity');
      rejects(col(type), /expects/, '+infinity');
    }
  });

  it('timestamptz takes date-times with a zone only: without one the instant would depend on the session', () => {
    accepts(
      col('timestamptz'),
      '2026-11-21T06:00:00.000Z',
      '2026-11-21T06:00:00.123456+05:30',
      '2026-11-21 06:00:00-0800',
      '2026-11-21T06:00Z',
      'infinity',
    );
    rejects(
      col('timestamptz'),
      /with a time zone/,
      '2026-11-21 06:00:00',
      '2026-11-21T06:00',
      '2026-11-21',
      '2026-11-21T24:00:00',
    );
  });

  for (const [type, message] of [
    ['timestamp', /expects an ISO-8601 date-time/],
    ['timestamptz', /with a time zone/],
  ] as const) {
    it(`${type} rejects impossible dates and times`, () => {
      rejects(
        col(type),
        message,
        '2026-02-30T00:00:00Z',
        '2026-11-21T25:00:00Z',
        '2026-11-21T24:01:00Z',
        '2026-11-21T12:60:00Z',
        '2026-11-21T12:00:61Z',
        'not a time',
        1763704800000,
      );
    });
  }

  it('time takes HH:MM[:SS[.ffffff]] with an optional zone, and 24:00', () => {
    accepts(col('time'), '00:00', '23:59:59', '12:30:15.5', '24:00:00', '08:00:00+02:00');
    accepts(col('timetz'), '08:00:00Z');
  });

  it('time rejects impossible times', () => {
    rejects(col('time'), /expects a time/, '24:00:01', '25:00', '12:60', '12:00:61', 'not a time', 700);
  });
});

describe('columnValueProblem: text types', () => {
  it('varchar(n) counts characters, not bytes', () => {
    const v = varchar(3);
    accepts(v, 'abc', 'äöü', '日本語', '😀😀😀', '');
    rejects(v, /longer than 3 characters \(character varying\(3\)\)/, 'abcd', 'äöüß', '😀😀😀😀');
  });

  it('varchar(n) ignores trailing spaces beyond n, as PostgreSQL truncates them', () => {
    accepts(varchar(3), 'abc   ');
    rejects(varchar(3), /longer than 3/, '   abcd', 'ab cd');
  });

  it('varchar(n) checks numbers and booleans by the text PostgreSQL gives them', () => {
    accepts(varchar(3), 123, 1e2);
    accepts(varchar(4), new JsonNumber('1.50'));
    rejects(varchar(3), /longer than 3/, 1234, true, false, new JsonNumber('1.50'));
    rejects(varchar(5), /longer than 5/, 1e21, 1e-7); // 1000000000000000000000 and 0.0000001, not 1e+21 and 1e-7
  });

  it('bpchar(n) has the same length rule', () => {
    accepts(bpchar(2), 'ab', 'ab  ');
    rejects(bpchar(2), /longer than 2 characters \(character\(2\)\)/, 'abc');
  });

  it('text has no length limit short of the size limit', () => {
    accepts(col('text'), 'x'.repeat(100_000));
    rejects(col('text'), /larger than 1 MB/, 'x'.repeat(1024 * 1024 + 1), 'é'.repeat(512 * 1024 + 1));
  });

  it('rejects a NUL character in text and varchar', () => {
    rejects(col('text'), /NUL character/, 'a\u0000b');
    rejects(varchar(10), /NUL character/, '\u0000');
  });

  it('rejects objects and arrays for scalar columns', () => {
    rejects(col('text'), /expects a scalar value \(text\), got an object/, { a: 'b' });
    rejects(col('text'), /expects a scalar value \(text\), got an array/, ['a']);
  });
});

describe('columnValueProblem: enums', () => {
  const mood = col('mood', { enumLabels: ['sad', 'ok', 'happy'] });

  it('takes only its labels, exactly', () => {
    accepts(mood, 'sad', 'happy');
    rejects(mood, /expects one of sad, ok, happy/, 'Happy', 'angry', '', 1);
  });

  it('rejects a NUL character before looking at the labels', () => {
    rejects(mood, /NUL character/, 'ok\u0000');
  });
});

describe('columnValueProblem: json / jsonb', () => {
  it('takes any JSON value', () => {
    for (const type of ['json', 'jsonb']) accepts(col(type), { a: [1, { b: null }] }, [1, 'x'], 'text', 42, true);
  });

  it('jsonb rejects a NUL character anywhere', () => {
    rejects(col('jsonb'), /NUL character/, { a: 'x\u0000' }, ['\u0000'], { ['k\u0000']: 1 });
  });
});

describe('columnValueProblem: arrays', () => {
  it('takes arrays whose elements fit, including NULL elements and nested arrays', () => {
    accepts(
      arrayOf('int4'),
      [],
      [1, 2, null],
      [
        [1, 2],
        [3, 4],
      ],
      ['5'],
    );
    accepts(arrayOf('text'), ['a', null, '"quoted"']);
  });

  it('checks every element, at any depth', () => {
    const ints = arrayOf('int2', { sqlType: 'smallint[]' });
    rejects(ints, /has an element that is out of range for smallint\[\]/, [1, 40000]);
    rejects(ints, /has an element that expects an integer/, [[1], ['x']]);
    rejects(ints, /has an element that expects a scalar value/, [{ a: 1 }]);
    rejects(
      arrayOf('varchar', { sqlType: 'character varying(2)[]', typmod: 6 }),
      /has an element that is longer than 2/,
      ['ab', 'abc'],
    );
    rejects(arrayOf('text'), /has an element that contains a NUL/, ['ok', 'x\u0000']);
  });

  it('rejects a scalar for an array column', () => {
    rejects(arrayOf('int4', { sqlType: 'integer[]' }), /expects an array \(integer\[\]\)/, 1, '{1,2}', { a: 1 });
  });

  it('rejects what PostgreSQL cannot read as an array: an empty sub-array, more than 6 dimensions', () => {
    rejects(arrayOf('int4'), /not a rectangular array/, [[]], [[[]]], [[1], []]);
    let deep: JsonValue = [1];
    for (let i = 0; i < 6; i++) deep = [deep];
    rejects(arrayOf('int4'), /more than 6 dimensions/, deep);
    accepts(arrayOf('int4'), (deep as JsonValue[])[0]);
    accepts(arrayOf('jsonb'), [[]], deep);
  });
});

describe('columnValueProblem: bytea and other types', () => {
  it('bytea takes hex bytes', () => {
    accepts(col('bytea'), '\\x', '\\xdeadBEEF');
    rejects(col('bytea'), /expects hex bytes/, '\\xabc', 'deadbeef', '\\xzz', 12);
  });

  it('types the service does not check are left to the database', () => {
    accepts(col('inet'), '10.0.0.1', 'not an address', 12);
    rejects(col('inet'), /larger than 1 MB/, 'x'.repeat(1024 * 1024 + 1));
  });

  it('holds values of every type to 1 MB, arrays and bytes included', () => {
    rejects(col('bytea'), /larger than 1 MB/, `\\x${'ab'.repeat(512 * 1024)}`);
    rejects(
      arrayOf('text', { sqlType: 'text[]' }),
      /larger than 1 MB/,
      Array.from({ length: 1024 }, () => 'x'.repeat(1024)),
    );
    rejects(col('jsonb'), /larger than 1 MB/, { blob: 'x'.repeat(1024 * 1024) });
    accepts(
      arrayOf('text', { sqlType: 'text[]' }),
      Array.from({ length: 1000 }, () => 'x'.repeat(1000)),
    );
  });
});

describe('isNumericColumn', () => {
  it('is true for numeric scalar types only', () => {
    for (const type of ['int2', 'int4', 'int8', 'numeric', 'float4', 'float8'])
      assert.equal(isNumericColumn(col(type)), true, type);
    for (const type of ['text', 'bool', 'money', 'jsonb']) assert.equal(isNumericColumn(col(type)), false, type);
    assert.equal(isNumericColumn(arrayOf('int4')), false);
  });
});

describe('columnValueProblem: what PostgreSQL refuses or accepts at the edges', () => {
  it('refuses floats that underflow to zero, accepts denormals and zeros', () => {
    rejects(col('float4', { sqlType: 'real' }), /out of range/, 1e-50, '1e-46');
    rejects(col('float8', { sqlType: 'double precision' }), /out of range/, '1e-400');
    accepts(col('float4', { sqlType: 'real' }), 1e-40, 0, '0.000', '-0e5');
    accepts(col('float8', { sqlType: 'double precision' }), '1e-310');
  });

  it('refuses a uuid with one brace', () => {
    rejects(col('uuid'), /UUID/, '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}');
    accepts(col('uuid'), '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}');
  });

  it('refuses anything after 24:00:00', () => {
    rejects(col('timestamp'), /date-time/, '2026-01-01T24:00:00.5');
    rejects(col('time'), /time/, '24:00:00.1');
    accepts(col('timestamp'), '2026-01-01T24:00:00');
  });

  it('accepts a jsonb string with a literal backslash-u0000, refuses a real NUL anywhere', () => {
    accepts(col('jsonb'), '\\u0000', { a: ['\\u0000'] });
    rejects(col('jsonb'), /NUL/, '\u0000', { a: ['x\u0000'] }, { ['k\u0000']: 1 });
  });

  it('accepts the boolean prefixes PostgreSQL accepts', () => {
    accepts(col('bool'), 'tru', 'tr', 'fals', 'fa', 'ye', 'n', 'of', 'OFF');
    rejects(col('bool'), /boolean/, 'o', 'yess', 'truth');
  });
});

describe('columnValueProblem: array shapes', () => {
  it('accepts rectangular arrays of any dimension and refuses ragged ones', () => {
    const tags = arrayOf('text', { sqlType: 'text[]' });
    accepts(
      tags,
      [],
      ['a'],
      [
        ['a', 'b'],
        ['c', 'd'],
      ],
      [[['x']]],
      [null, 'a'],
    );
    rejects(tags, /rectangular/, [['a'], 'b'], [['a'], ['b', 'c']], [[['a']], [['b'], ['c']]]);
  });
});
