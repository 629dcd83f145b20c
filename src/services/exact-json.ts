import { randomBytes } from 'node:crypto';

/**
 * JSON numbers taken exactly. JSON.parse reads every number into a double, which holds about 15 significant digits:
 * `12345678901234567890` would become 12345678901234567000, and `1e400` Infinity. A number a double would change is
 * kept instead as a JsonNumber, its text as sent, which the column checks read as the decimal it is and which is
 * written out as that text again (stringifyJson), so that PostgreSQL stores what the caller sent (numeric, jsonb
 * and text hold any number of digits) or the check refuses it (an integer column out of range, say).
 */
export class JsonNumber {
  constructor(readonly text: string) {}

  /** Written by stringifyJson as the number's text; JSON.stringify alone would write the marker, as a string. */
  toJSON(): string {
    return MARKER + this.text;
  }
}

/** A number in a value: a double, or a JsonNumber where a double would not hold it exactly. */
export type ExactNumber = number | JsonNumber;

/** A JSON value as parseJson gives it: JsonValue, with JsonNumbers among its numbers. */
export type ExactJsonValue =
  string | number | boolean | null | JsonNumber | ExactJsonValue[] | { [key: string]: ExactJsonValue };

/**
 * What a JsonNumber is written as in JSON.stringify's text, to be swapped for its digits: a NUL and a random nonce of
 * this process, which no value can hold by chance (an NDJSON record may hold a NUL, where a request may not).
 */
const MARKER = `\u0000#${randomBytes(8).toString('hex')}:`;
const MARKED_TEXT = JSON.stringify(MARKER).slice(1, -1);
const MARKED = new RegExp(`"${MARKED_TEXT.replace(/\\/g, '\\\\')}([^"]*)"`, 'g');

/**
 * Whether JSON text holds a number that a double may not hold exactly: 16 or more digits (a decimal point counted
 * among them), or an exponent. A number starts after `:`, `,`, `[` or white space, so the digits of a string (an id
 * such as a UUID, `…-4e0b-…`) do not count. Text without one parses exactly with JSON.parse, as nearly every request
 * does.
 */
const MAYBE_INEXACT = /[:,[\s]-?(?:[\d.]{16}|\d+(?:\.\d+)?[eE])/;

/** Whether parseJson may keep a number of this text as a JsonNumber; when false, JSON.parse reads it exactly. */
export function mayBeInexact(text: string): boolean {
  return MAYBE_INEXACT.test(text);
}

/** JSON text parsed, each number exact: a double where that holds it, else a JsonNumber. Throws on malformed JSON. */
export function parseJson(text: string): unknown {
  return MAYBE_INEXACT.test(text) ? parseExactly(text) : JSON.parse(text);
}

/**
 * parseJson's way for text that may hold an inexact number: each number a double would change is swapped, in the text,
 * for a string named by a random nonce of this parse (no caller can guess it), which JSON.parse's reviver turns into
 * its JsonNumber. Only well-formed numbers are swapped, so malformed text stays malformed.
 */
export function parseExactly(text: string): unknown {
  const nonce = `${randomBytes(8).toString('hex')}:`;
  const literals: string[] = [];
  let swapped = '';
  let copied = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) i = endOfString(text, i);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < text.length && NUMBER_CHAR.test(text[end])) end++;
      const literal = text.slice(i, end);
      if (JSON_NUMBER.test(literal) && !isExactDouble(literal)) {
        swapped += `${text.slice(copied, i)}"\\u0000${nonce}${literals.length}"`;
        literals.push(literal);
        copied = end;
      }
      i = end - 1;
    }
  }
  if (literals.length === 0) return JSON.parse(text);
  return JSON.parse(swapped + text.slice(copied), (_key, value: unknown) =>
    typeof value === 'string' && value.startsWith(`\u0000${nonce}`)
      ? new JsonNumber(literals[Number(value.slice(nonce.length + 1))])
      : value,
  );
}

const NUMBER_CHAR = /[-+.eE0-9]/;
const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/** The index of the closing quote of the string whose opening quote is at `start` (or the text's end). */
function endOfString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i;
  }
  return text.length;
}

/** Whether a double holds this number exactly: its shortest text is the same decimal. */
function isExactDouble(literal: string): boolean {
  const double = Number(literal);
  return Number.isFinite(double) && sameDecimal(literal, String(double));
}

/** JSON.stringify, with each JsonNumber written as its text. */
export function stringifyJson(value: unknown): string {
  const text = JSON.stringify(value);
  return text.includes(MARKED_TEXT) ? text.replace(MARKED, '$1') : text;
}

/** A decimal as sign, significant digits and the power of ten of the last one; null for text that is no JSON-like number. */
export interface Decimal {
  negative: boolean;
  /** Without leading or trailing zeros; empty for zero. */
  digits: string;
  /** The value is digits × 10^exponent. */
  exponent: number;
  /** Digits after the decimal point as written (a scale, as PostgreSQL's numeric keeps it: 1.50 has 2). */
  scale: number;
}

const DECIMAL_TEXT = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

export function decimalOf(text: string): Decimal | null {
  const match = DECIMAL_TEXT.exec(text);
  if (!match || (match[2] === '' && (match[3] ?? '') === '')) return null;
  const [, sign, whole, fraction = '', power = '0'] = match;
  const exponent = Number(power);
  if (!Number.isSafeInteger(exponent)) return null;
  const all = (whole + fraction).replace(/^0+/, '');
  const digits = all.replace(/0+$/, '');
  return {
    negative: sign === '-' && digits !== '',
    digits,
    exponent: digits === '' ? 0 : exponent - fraction.length + (all.length - digits.length),
    scale: Math.max(0, fraction.length - exponent),
  };
}

function sameDecimal(a: string, b: string): boolean {
  const [x, y] = [decimalOf(a), decimalOf(b)];
  return x !== null && y !== null && x.digits === y.digits && x.negative === y.negative && x.exponent === y.exponent;
}

/** The text of a number as sent: a double's shortest text, or a JsonNumber's own. */
export function numberLiteral(value: ExactNumber): string {
  return typeof value === 'number' ? String(value) : value.text;
}

/**
 * The text PostgreSQL gives a JSON number (`->>`, and so what a text column stores): plain digits, no exponent, with
 * the scale as written (1.50 stays 1.50, 1e21 is 1000000000000000000000, 1.5e-3 is 0.0015).
 */
export function numericText(decimal: Decimal): string {
  const { negative, digits, exponent, scale } = decimal;
  const fractionOf = (written: string) => (scale > 0 ? `.${written.padEnd(scale, '0')}` : '');
  if (digits === '') return `0${fractionOf('')}`;
  const integerDigits = digits.length + exponent; // digits before the decimal point
  const sign = negative ? '-' : '';
  if (integerDigits <= 0) return `${sign}0${fractionOf('0'.repeat(-integerDigits) + digits)}`;
  if (integerDigits >= digits.length) return `${sign}${digits}${'0'.repeat(exponent)}${fractionOf('')}`;
  return `${sign}${digits.slice(0, integerDigits)}${fractionOf(digits.slice(integerDigits))}`;
}

/** PostgreSQL's numeric (and so jsonb's numbers) holds up to 131072 digits before the decimal point and 16383 after. */
export function numericRangeProblem(decimal: Decimal): string | null {
  const integerDigits = decimal.digits === '' ? 0 : decimal.digits.length + decimal.exponent;
  if (integerDigits > 131_072) return 'has more than 131072 digits before the decimal point';
  if (decimal.scale > 16_383) return 'has more than 16383 digits after the decimal point';
  return null;
}
