import type { JsonValue } from '../../interfaces/operation.interfaces';
import type { TargetColumn } from '../../interfaces/catalog.interfaces';

/**
 * Checks JSON values against a column's type before anything is stored, and encodes them as the text that
 * the writer casts to the column's type in SQL. Types not listed here are passed as text and left to the
 * database, which decides when the operation is applied.
 */

const INTEGER_RANGES: Record<string, [bigint, bigint]> = {
  int2: [-32768n, 32767n],
  int4: [-2147483648n, 2147483647n],
  int8: [-9223372036854775808n, 9223372036854775807n],
};
const NUMERIC_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const SPECIAL_FLOATS = /^[+-]?(nan|infinity|inf)$/i;
/** What PostgreSQL's boolean input accepts: the words and their unambiguous prefixes, on/off, 1/0. */
const BOOLEAN_TEXT = /^(t(r(ue?)?)?|f(a(l(se?)?)?)?|y(es?)?|no?|on|off?|1|0)$/i;
const UUID_TEXT = /^([0-9a-f]{4}(-?[0-9a-f]{4}){7}|\{[0-9a-f]{4}(-?[0-9a-f]{4}){7}\})$/i;
const DATE_TEXT = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})([T ](\d{2}):(\d{2})(:(\d{2})(\.\d{1,6})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$/i;
const TIME_TEXT = /^(\d{2}):(\d{2})(:(\d{2})(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$/i;
const NUMERIC_TYPES = new Set(['int2', 'int4', 'int8', 'numeric', 'float4', 'float8']);
const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'name', 'citext']);
/** The largest value of any type, as its text (JSON for arrays and objects): 1 MB. */
export const MAX_VALUE_BYTES = 1024 * 1024;

export function isNumericColumn(column: TargetColumn): boolean {
  return !column.isArray && NUMERIC_TYPES.has(column.baseType);
}

/** Returns why `value` cannot be stored in `column`, or null when it can. `null` itself is checked by the caller. */
export function columnValueProblem(column: TargetColumn, value: JsonValue): string | null {
  if (value === null) return null;
  if (encodedBytes(value) > MAX_VALUE_BYTES) return 'is larger than 1 MB';
  if (column.isArray) {
    if (!Array.isArray(value)) return `expects an array (${column.sqlType})`;
    if (depthOf(value) > MAX_JSON_DEPTH) return `is nested deeper than ${MAX_JSON_DEPTH} levels`;
    if (column.baseType !== 'json' && column.baseType !== 'jsonb' && !isRectangular(value)) {
      return 'is not a rectangular array (PostgreSQL arrays need sub-arrays of matching dimensions)';
    }
    for (const element of value.flat(Infinity as 1) as JsonValue[]) {
      const problem = element === null ? null : scalarProblem(column, element);
      if (problem) return `has an element that ${problem}`;
    }
    return null;
  }
  return scalarProblem(column, value);
}

function scalarProblem(column: TargetColumn, value: JsonValue): string | null {
  const type = column.baseType;
  if (type === 'json' || type === 'jsonb') return jsonProblem(value);
  if (typeof value === 'object')
    return `expects a scalar value (${column.sqlType}), got ${Array.isArray(value) ? 'an array' : 'an object'}`;
  if (typeof value === 'string' && value.includes('\u0000')) return 'contains a NUL character';
  if (type in INTEGER_RANGES) return integerProblem(column, value);
  switch (type) {
    case 'numeric':
      return numericProblem(column, value);
    case 'float4':
    case 'float8':
      return floatProblem(column, value);
    case 'bool':
      return typeof value === 'boolean' || (typeof value === 'string' && BOOLEAN_TEXT.test(value.trim()))
        ? null
        : `expects a boolean (${column.sqlType})`;
    case 'uuid':
      return typeof value === 'string' && UUID_TEXT.test(value) ? null : 'expects a UUID';
    case 'date':
      return typeof value === 'string' && (isInfinity(value) || dateProblem(DATE_TEXT.exec(value)) === null)
        ? null
        : 'expects a date (YYYY-MM-DD)';
    case 'timestamp':
      return typeof value === 'string' && (isInfinity(value) || dateProblem(TIMESTAMP_TEXT.exec(value)) === null)
        ? null
        : 'expects an ISO-8601 date-time';
    case 'timestamptz':
      // Without a zone the instant would depend on the database session's time zone.
      return typeof value === 'string' && (isInfinity(value) || isInstant(value))
        ? null
        : 'expects an RFC 3339 date-time with a time zone (2026-11-21T10:00:00Z)';
    case 'time':
    case 'timetz':
      return typeof value === 'string' && timeIsValid(TIME_TEXT.exec(value)) ? null : 'expects a time (HH:MM[:SS])';
    case 'bytea':
      return typeof value === 'string' && /^\\x([0-9a-f]{2})*$/i.test(value) ? null : 'expects hex bytes (\\x…)';
  }
  if (column.enumLabels)
    return column.enumLabels.includes(String(value)) ? null : `expects one of ${column.enumLabels.join(', ')}`;
  if (TEXT_TYPES.has(type)) return textProblem(column, String(value));
  return null;
}

function encodedBytes(value: JsonValue): number {
  if (typeof value === 'string') return value.length * 3 <= MAX_VALUE_BYTES ? 0 : Buffer.byteLength(value);
  return typeof value === 'object' ? Buffer.byteLength(JSON.stringify(value)) : 0;
}

function integerProblem(column: TargetColumn, value: JsonValue): string | null {
  if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
    return `is beyond 2^53 as a JSON number and may have been rounded: send it as a string (${column.sqlType})`;
  }
  const text =
    typeof value === 'number'
      ? Number.isInteger(value)
        ? BigInt(value).toString()
        : null
      : typeof value === 'string'
        ? value.trim()
        : null;
  if (text === null || !/^[+-]?\d{1,20}$/.test(text)) return `expects an integer (${column.sqlType})`;
  const [min, max] = INTEGER_RANGES[column.baseType];
  const n = BigInt(text);
  return n < min || n > max ? `is out of range for ${column.sqlType}` : null;
}

function numericProblem(column: TargetColumn, value: JsonValue): string | null {
  const text =
    typeof value === 'number'
      ? Number.isFinite(value)
        ? String(value)
        : null
      : typeof value === 'string'
        ? value.trim()
        : null;
  if (text === null) return `expects a number (${column.sqlType})`;
  if (SPECIAL_FLOATS.test(text)) return null;
  if (!NUMERIC_TEXT.test(text) || text.length > 1000) return `expects a number (${column.sqlType})`;
  if (column.typmod < 4) return null; // unconstrained numeric
  const precision = ((column.typmod - 4) >> 16) & 0xffff;
  const scale = (((column.typmod - 4) & 0x7ff) ^ 0x400) - 0x400; // 11-bit signed: numeric(3,-1), numeric(2,5)
  return roundedIntegerDigits(text, scale) > precision - scale ? `is out of range for ${column.sqlType}` : null;
}

/**
 * Where the decimal point falls among the significant digits once the value is rounded to `scale` decimals,
 * as PostgreSQL rounds: 123.4 → 3, 0.5 → 0, 0.00012 → -3; zero → -Infinity. The value fits numeric(p,s) when
 * this is at most p − s.
 */
export function roundedIntegerDigits(text: string, scale: number): number {
  const match = /^[+-]?(\d*)\.?(\d*)(?:e([+-]?\d+))?$/i.exec(text)!;
  const exponent = Number(match[3] ?? 0);
  let digits = (match[1] + match[2]).replace(/^0+/, '');
  let pointAt = match[1].replace(/^0+/, '').length + exponent; // position of the decimal point in `digits`
  if (digits === '') return -Infinity;
  if (match[1].replace(/^0+/, '') === '') {
    const leadingZeros = match[2].length - match[2].replace(/^0+/, '').length;
    pointAt = -leadingZeros + exponent;
  }
  const keep = pointAt + scale; // digits kept after rounding
  if (keep < 0) return -Infinity;
  if (keep < digits.length) {
    const roundUp = digits[keep] >= '5';
    digits = digits.slice(0, keep);
    if (roundUp) {
      const rounded = (BigInt(digits || '0') + 1n).toString();
      if (rounded.length > digits.length) pointAt += 1;
      digits = rounded;
    }
  }
  if (/^0*$/.test(digits)) return -Infinity;
  return pointAt - (digits.length - digits.replace(/^0+/, '').length);
}

function floatProblem(column: TargetColumn, value: JsonValue): string | null {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : null;
  if (text === null || !(SPECIAL_FLOATS.test(text) || NUMERIC_TEXT.test(text)))
    return `expects a number (${column.sqlType})`;
  if (SPECIAL_FLOATS.test(text)) return null;
  const n = column.baseType === 'float4' ? Math.fround(Number(text)) : Number(text);
  const zeroText = !/[1-9]/.test(text.split(/e/i)[0]);
  // Overflow to infinity and underflow to zero are errors in PostgreSQL (denormals are fine).
  return !Number.isFinite(n) || (n === 0 && !zeroText) ? `is out of range for ${column.sqlType}` : null;
}

function textProblem(column: TargetColumn, text: string): string | null {
  const maxLength = column.typmod > 4 ? column.typmod - 4 : null;
  if (maxLength !== null && [...text.replace(/ +$/, '')].length > maxLength)
    return `is longer than ${maxLength} characters (${column.sqlType})`;
  return null;
}

/** A date-time with a time zone, on the calendar and the clock: `2026-11-21T10:00:00Z`, `2026-11-21 10:00+05:30`. */
export function isInstant(text: string): boolean {
  const match = TIMESTAMP_TEXT.exec(text);
  return match?.[5] !== undefined && match[10] !== undefined && dateProblem(match) === null;
}

function isInfinity(text: string): boolean {
  return /^[+-]?infinity$/i.test(text);
}

/** Checks a DATE_TEXT or TIMESTAMP_TEXT match: a real calendar date and, when given, a real time of day. */
function dateProblem(match: RegExpExecArray | null): string | null {
  if (!match) return 'malformed';
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (year < 1 || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return 'not a calendar date';
  if (match[5] !== undefined && !isClockTime(match[5], match[6], match[8], match[9])) return 'not a time of day';
  return null;
}

function timeIsValid(match: RegExpExecArray | null): boolean {
  return match !== null && isClockTime(match[1], match[2], match[4], match[5]);
}

/** 24:00:00 is allowed, as in PostgreSQL, but nothing after it. */
function isClockTime(h: string, m: string, s: string | undefined, fraction: string | undefined): boolean {
  const [hours, minutes, seconds] = [Number(h), Number(m), Number(s ?? 0) + Number(fraction ?? 0)];
  return minutes < 60 && seconds < 60 && (hours < 24 || (hours === 24 && minutes === 0 && seconds === 0));
}

export const MAX_JSON_DEPTH = 32;

function jsonProblem(value: JsonValue): string | null {
  if (depthOf(value) > MAX_JSON_DEPTH) return `is nested deeper than ${MAX_JSON_DEPTH} levels`;
  return containsNul(value) ? 'contains a NUL character' : null;
}

/** Every level either holds only arrays, all of one length and shape, or no arrays at all. */
function isRectangular(values: JsonValue[]): boolean {
  const arrays = values.filter(Array.isArray) as JsonValue[][];
  if (arrays.length === 0) return true;
  if (arrays.length !== values.length) return false;
  const shape = JSON.stringify(shapeOf(arrays[0]));
  return arrays.every((a) => JSON.stringify(shapeOf(a)) === shape && isRectangular(a));
}

function shapeOf(value: JsonValue): number[] {
  return Array.isArray(value) ? [value.length, ...(value.length > 0 ? shapeOf(value[0]) : [])] : [];
}

function depthOf(value: JsonValue): number {
  if (value === null || typeof value !== 'object') return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  let deepest = 0;
  for (const child of children) deepest = Math.max(deepest, depthOf(child));
  return 1 + deepest;
}

function containsNul(value: JsonValue): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(containsNul);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).some(([k, v]) => k.includes('\u0000') || containsNul(v));
  return false;
}

/** The text the writer binds for `value`; the statement casts it to the column's type. */
export function toSqlText(column: TargetColumn, value: JsonValue | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (column.baseType === 'json' || column.baseType === 'jsonb') {
    return column.isArray ? arrayLiteral(value as JsonValue[], (v) => JSON.stringify(v), false) : JSON.stringify(value);
  }
  if (column.isArray) return arrayLiteral(value as JsonValue[], (v) => String(v), true);
  return String(value);
}

/** A PostgreSQL array literal (`{"a","b",NULL}`); with `nested`, inner arrays are further dimensions. */
export function arrayLiteral(values: JsonValue[], encode: (v: JsonValue) => string, nested: boolean): string {
  const items = values.map((v): string => {
    if (v === null) return 'NULL';
    if (nested && Array.isArray(v)) return arrayLiteral(v, encode, nested);
    return `"${encode(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  });
  return `{${items.join(',')}}`;
}
