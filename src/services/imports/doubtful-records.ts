import type { TargetColumn } from '../../interfaces/catalog.interfaces';

/**
 * Which CSV records of a refused chunk the database must judge, and which it certainly takes as far as their text goes.
 * A chunk COPY refused is sifted in the database (ImportJob.sift); most of its records are plainly good, and a record
 * whose every field is a plain value of its column's type (digits that fit an integer, a date that exists, text that
 * fits) can go to the target's COPY without it. The tests here only ever vouch for less than PostgreSQL takes: anything
 * else is doubtful and judged by the database, and a record vouched for that the target still refuses (a constraint, a
 * CHECK, a trigger) is narrowed there. A mistake here costs time, never a record.
 */

/** Vouches for an unquoted field's bytes [from, to) as a value of one column's type. */
type FieldTest = (data: Buffer, from: number, to: number) => boolean;

/** How a chunk's records are written: their columns' tests (null: every value doubtful) and the CSV options. */
export interface RecordShape {
  tests: (FieldTest | null)[];
  delimiter: number;
  quote: number;
  /** The NULL text's bytes; null: the empty unquoted field. */
  nullText: Buffer | null;
}

const [ZERO, NINE, PLUS, MINUS, DOT, SPACE, COLON, T, Z, CR, NUL] = [...'09+-. :TZ\r\0'].map((c) => c.charCodeAt(0));

/** The shape of records of `columns` as COPY reads them with these options. */
export function recordShape(
  columns: TargetColumn[],
  options: { delimiter: string; quote: string; nullText: string | null },
): RecordShape {
  return {
    tests: columns.map(fieldTest),
    delimiter: options.delimiter.charCodeAt(0),
    quote: options.quote.charCodeAt(0),
    nullText: options.nullText === null ? null : Buffer.from(options.nullText),
  };
}

/** The records from `from` on that the database must judge: record i is `data` [bounds[i], bounds[i + 1]), a line. */
export function doubtfulRecords(data: Buffer, bounds: ArrayLike<number>, from: number, shape: RecordShape): number[] {
  const doubtful: number[] = [];
  for (let i = from; i < bounds.length - 1; i++) if (!vouched(data, bounds[i], bounds[i + 1], shape)) doubtful.push(i);
  return doubtful;
}

function vouched(data: Buffer, start: number, end: number, shape: RecordShape): boolean {
  end -= 1; // the newline
  if (end > start && data[end - 1] === CR) end -= 1;
  let at = start;
  const { tests, delimiter, quote } = shape;
  for (let column = 0; column < tests.length; column++) {
    if (at > end) return false; // a field missing
    const test = tests[column];
    if (data[at] === quote) {
      // the value between the quotes, its doubled quotes as they are: two bytes to a text's length (more than it
      // has), and a byte no other test takes
      const close = closingQuote(data, at + 1, end, quote);
      if (close < 0 || test === null || !test(data, at + 1, close)) return false;
      at = close + 1;
      if (at < end && data[at] !== delimiter) return false;
    } else {
      let stop = at;
      while (stop < end && data[stop] !== delimiter && data[stop] !== quote) stop++;
      if (stop < end && data[stop] === quote) return false;
      if (!isNull(data, at, stop, shape) && (test === null || !test(data, at, stop))) return false;
      at = stop;
    }
    at += 1; // the delimiter
  }
  return at === end + 1; // else a field too many
}

/** Where a quoted value that starts at `from` ends (its closing quote), or -1 when not on this record's line. */
function closingQuote(data: Buffer, from: number, end: number, quote: number): number {
  for (let at = from; at < end; at++) {
    if (data[at] !== quote) continue;
    if (data[at + 1] !== quote) return at;
    at += 1; // a doubled quote
  }
  return -1;
}

function isNull(data: Buffer, from: number, to: number, shape: RecordShape): boolean {
  const marker = shape.nullText;
  if (marker === null) return from === to;
  return to - from === marker.length && data.compare(marker, 0, marker.length, from, to) === 0;
}

function hasNul(data: Buffer, from: number, to: number): boolean {
  for (let at = from; at < to; at++) if (data[at] === NUL) return true;
  return false;
}

/** The test of a column's values by its type as SQL spells it without a modifier; null for every other type. */
function fieldTest(column: TargetColumn): FieldTest | null {
  if (column.isArray) return null;
  switch (column.castType) {
    case 'smallint':
      return (data, from, to) => isInteger(data, from, to, 4);
    case 'integer':
      return (data, from, to) => isInteger(data, from, to, 9);
    case 'bigint':
      return (data, from, to) => isInteger(data, from, to, 18);
    case 'numeric':
      return numericTest(numericDigits(column.typmod), 100);
    case 'real':
    case 'double precision':
      return numericTest(15, 16); // far from a float's overflow and underflow
    case 'text':
    case 'character varying':
    case 'bpchar': {
      const most = column.typmod >= 4 ? column.typmod - 4 : Infinity; // characters: a character is a byte at least
      return (data, from, to) => to - from <= most && !hasNul(data, from, to);
    }
    case 'boolean':
      return isBoolean;
    case 'date':
      return (data, from, to) => to - from === 10 && isDate(data, from);
    case 'timestamp without time zone':
    case 'timestamp with time zone':
      return isTimestamp;
    case 'uuid':
      return isUuid;
    default:
      return null;
  }
}

/** Optional sign, then 1 to `most` digits: an integer of any type that holds `most` digits. */
function isInteger(data: Buffer, from: number, to: number, most: number): boolean {
  if (data[from] === PLUS || data[from] === MINUS) from++;
  return to > from && to - from <= most && allDigits(data, from, to);
}

/** The integer digits numeric(p,s) takes for certain: fewer than p − s (rounding adds one); -1 for none. */
function numericDigits(typmod: number): number {
  if (typmod < 4) return 1000; // no modifier: up to 131,072 integer digits
  const precision = ((typmod - 4) >> 16) & 0xffff;
  const scale = (((typmod - 4) & 0x7ff) ^ 0x400) - 0x400; // 11 bits, signed: numeric(3,-1), numeric(2,5)
  return scale >= 0 && scale <= precision ? precision - scale - 1 : -1;
}

/** Optional sign, then digits, a point and digits: at most `integers` before the point and `decimals` after it. */
function numericTest(integers: number, decimals: number): FieldTest {
  return (data, from, to) => {
    if (data[from] === PLUS || data[from] === MINUS) from++;
    let point = from;
    while (point < to && data[point] !== DOT) point++;
    const fraction = Math.max(0, to - point - 1);
    if (point - from > integers || fraction > decimals || point - from + fraction === 0) return false;
    return allDigits(data, from, point) && allDigits(data, point + 1, to);
  };
}

function allDigits(data: Buffer, from: number, to: number): boolean {
  for (let at = from; at < to; at++) if (data[at] < ZERO || data[at] > NINE) return false;
  return true;
}

const BOOLEANS = new Set(['t', 'f', 'true', 'false', 'yes', 'no', 'on', 'off', '1', '0']);
function isBoolean(data: Buffer, from: number, to: number): boolean {
  return to - from <= 5 && BOOLEANS.has(data.toString('latin1', from, to));
}

/** YYYY-MM-DD, a day that exists, years 1 to 9999. */
function isDate(data: Buffer, at: number): boolean {
  if (data[at + 4] !== MINUS || data[at + 7] !== MINUS) return false;
  const [year, month, day] = [number(data, at, 4), number(data, at + 5, 2), number(data, at + 8, 2)];
  if (!(year >= 1 && month >= 1 && month <= 12 && day >= 1)) return false; // NaN where a digit is missing
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= (month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31);
}

/** YYYY-MM-DD[T ]HH:MM:SS, up to six decimals, then Z or ±HH[:MM] or nothing. */
function isTimestamp(data: Buffer, from: number, to: number): boolean {
  if (to - from < 19 || !isDate(data, from) || (data[from + 10] !== T && data[from + 10] !== SPACE)) return false;
  if (!isClock(data, from + 11)) return false;
  let at = from + 19;
  if (data[at] === DOT) {
    const digits = at + 1;
    while (at + 1 < to && data[at + 1] >= ZERO && data[at + 1] <= NINE) at++;
    if (at + 1 === digits || at + 1 - digits > 6) return false;
    at += 1;
  }
  if (at === to || (data[at] === Z && at + 1 === to)) return true;
  if (data[at] !== PLUS && data[at] !== MINUS) return false;
  if (to - at === 3) return number(data, at + 1, 2) <= 14;
  return to - at === 6 && data[at + 3] === COLON && number(data, at + 1, 2) <= 14 && number(data, at + 4, 2) <= 59;
}

/** HH:MM:SS at `at`, a time of day. */
function isClock(data: Buffer, at: number): boolean {
  return (
    data[at + 2] === COLON &&
    data[at + 5] === COLON &&
    number(data, at, 2) <= 23 &&
    number(data, at + 3, 2) <= 59 &&
    number(data, at + 6, 2) <= 59
  );
}

/** The `length` digits at `at` as a number; NaN when one is not a digit (every comparison with it is false). */
function number(data: Buffer, at: number, length: number): number {
  let value = 0;
  for (let i = at; i < at + length; i++) {
    const digit = data[i] - ZERO;
    if (!(digit >= 0 && digit <= 9)) return NaN;
    value = value * 10 + digit;
  }
  return value;
}

/** 8-4-4-4-12 hexadecimal digits. */
function isUuid(data: Buffer, from: number, to: number): boolean {
  if (to - from !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = data[from + i] | 0x20; // lower case
    const dash = i === 8 || i === 13 || i === 18 || i === 23;
    if (dash ? data[from + i] !== MINUS : !((c >= ZERO && c <= NINE) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}
