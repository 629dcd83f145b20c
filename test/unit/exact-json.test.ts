import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decimalOf,
  JsonNumber,
  mayBeInexact,
  numericRangeProblem,
  parseExactly,
  parseJson,
  stringifyJson,
} from '../../src/services/exact-json';

/** JSON number literals of every kind: short, long, with fractions and exponents, negative, zero. */
const literal = fc
  .tuple(
    fc.boolean(),
    fc.stringMatching(/^(0|[1-9][0-9]{0,30})$/),
    fc.option(fc.stringMatching(/^[0-9]{1,25}$/), { nil: undefined }),
    fc.option(fc.integer({ min: -400, max: 400 }), { nil: undefined }),
  )
  .map(
    ([negative, whole, fraction, exponent]) =>
      `${negative ? '-' : ''}${whole}${fraction === undefined ? '' : `.${fraction}`}${exponent === undefined ? '' : `e${exponent}`}`,
  );

describe('exact JSON numbers', () => {
  it('keeps every number exactly: a double where it holds the decimal, else its text', () => {
    fc.assert(
      fc.property(literal, (text) => {
        const [value] = parseJson(`[${text}]`) as [number | JsonNumber];
        const decimal = decimalOf(text)!;
        const kept = decimalOf(typeof value === 'number' ? String(value) : value.text)!;
        assert.deepEqual(
          [kept.negative, kept.digits, kept.exponent],
          [decimal.negative, decimal.digits, decimal.exponent],
        );
        if (value instanceof JsonNumber) assert.equal(value.text, text, 'a JsonNumber keeps its text as sent');
      }),
      { numRuns: 2000, seed: 20261123 },
    );
  });

  it('writes JsonNumbers back as their text, everything else as JSON.stringify does', () => {
    fc.assert(
      fc.property(fc.jsonValue(), literal, (value, text) => {
        const withNumber = { value, n: new JsonNumber(text) };
        assert.equal(stringifyJson(withNumber), `{"value":${JSON.stringify(value)},"n":${text}}`);
        assert.deepEqual(parseJson(stringifyJson(value)), JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 1000, seed: 20261123 },
    );
  });

  it('parses as JSON.parse does where every number is short: keys repeated, strings that look like numbers', () => {
    const text = '{"a":1,"a":"12345678901234567890","b":[1e400],"c":" 1e400"}';
    assert.deepEqual(parseJson(text), { a: '12345678901234567890', b: [new JsonNumber('1e400')], c: ' 1e400' });
    assert.throws(() => parseExactly('[1.2.3e400]'), SyntaxError, 'malformed numbers stay malformed');
    assert.throws(() => parseExactly('[0123456789012345678]'), SyntaxError);
  });

  it('cannot be fooled by a string that looks like its placeholders', () => {
    const text = '["\\u0000abc:0", 12345678901234567890]';
    assert.deepEqual(parseJson(text), ['\u0000abc:0', new JsonNumber('12345678901234567890')]);
  });

  it('looks closer only at text with a long number or an exponent, not at the digits of strings', () => {
    assert.equal(mayBeInexact('{"id":"9a6c4a82-c6a2-4e0b-b869-633c38a2a55e","key":"12345678901234567890"}'), false);
    assert.equal(mayBeInexact('{"a": 123456789012345}'), false);
    for (const text of ['{"a":1234567890123456}', '{"a":0.12345678901234}', '[1e5]', '[-2.5E-3]'])
      assert.equal(mayBeInexact(text), true, text);
  });

  it("knows PostgreSQL's numeric range", () => {
    assert.equal(numericRangeProblem(decimalOf('1e131071')!), null);
    assert.match(numericRangeProblem(decimalOf('1e131072')!)!, /131072 digits before/);
    assert.equal(numericRangeProblem(decimalOf('1e-16383')!), null);
    assert.match(numericRangeProblem(decimalOf('1.0e-16383')!)!, /16383 digits after/);
  });
});

describe('stringifyJson: text that looks like its marker', () => {
  it('writes a string holding a NUL and # as the string it is, never as a number', () => {
    assert.equal(stringifyJson({ a: '\u0000#5', b: ['\u0000#x'] }), '{"a":"\\u0000#5","b":["\\u0000#x"]}');
    assert.equal(
      stringifyJson({ a: new JsonNumber('12345678901234567890'), b: '\u0000#7' }),
      '{"a":12345678901234567890,"b":"\\u0000#7"}',
    );
  });
});
