import type { TargetColumn } from '../../interfaces/catalog.interfaces';
import {
  Decimal,
  decimalOf,
  ExactJsonValue,
  JsonNumber,
  numberLiteral,
  numericRangeProblem,
  numericText,
} from '../exact-json';

/**
 * Checks JSON values against a column's type before anything is stored, as PostgreSQL will read them: the writer
 * casts the text `->>` gives of the stored JSON (a number's as PostgreSQL writes numerics: 1e21 is 22 digits) to the
 * column's type. Numbers are exact (JsonNumber where a double would change them). Types not listed here are left
 * to the database, which decides when the operation is applied; so are a domain's CHECK constraints.
 */

const INTEGER_RANGES: Record<string, [bigint, bigint]> = {
  int2: [-32768n, 32767n],
  int4: [-2147483648n, 2147483647n],
  int8: [-9223372036854775808n, 9223372036854775807n],
};
const NUMERIC_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
/** What float4 and float8 read as NaN and the infinities (PostgreSQL's float input, strtod's words included). */
const SPECIAL_FLOATS = /^[+-]?(nan|infinity|inf)$/i;
/** The white space PostgreSQL's input functions skip around a number or a boolean: ASCII only (not NBSP, U+2028, a BOM). */
const SPACE = /^[ \t\n\r\v\f]+|[ \t\n\r\v\f]+$/g;
/** PostgreSQL's arrays have at most 6 dimensions. */
const MAX_ARRAY_DIMENSIONS = 6;
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
export function columnValueProblem(column: TargetColumn, value: ExactJsonValue): string | null {
  if (value === null) return null;
  if (encodedBytes(value) > MAX_VALUE_BYTES) return 'is larger than 1 MB';
  if (column.isArray) {
    if (!Array.isArray(value)) return `expects an array (${column.sqlType})`;
    if (depthOf(value) > MAX_JSON_DEPTH) return `is nested deeper than ${MAX_JSON_DEPTH} levels`;
    if (column.baseType !== 'json' && column.baseType !== 'jsonb') {
      if (!isRectangular(value))
        return 'is not a rectangular array (PostgreSQL arrays need sub-arrays of matching dimensions, none empty)';
      if (shapeOf(value).length > MAX_ARRAY_DIMENSIONS)
        return `has more than ${MAX_ARRAY_DIMENSIONS} dimensions (PostgreSQL's limit)`;
    }
    for (const element of value.flat(Infinity as 1) as ExactJsonValue[]) {
      const problem = element === null ? null : scalarProblem(column, element);
      if (problem) return `has an element that ${problem}`;
    }
    return null;
  }
  return scalarProblem(column, value);
}

function scalarProblem(column: TargetColumn, value: ExactJsonValue): string | null {
  const type = column.baseType;
  if (type === 'json' || type === 'jsonb') return jsonProblem(value);
  if (typeof value === 'object' && !(value instanceof JsonNumber))
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
      return typeof value === 'boolean' || (typeof value === 'string' && BOOLEAN_TEXT.test(pgTrim(value)))
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
    return column.enumLabels.includes(scalarText(value as Scalar))
      ? null
      : `expects one of ${column.enumLabels.join(', ')}`;
  if (TEXT_TYPES.has(type)) return textProblem(column, scalarText(value as Scalar));
  return null;
}

/** A value of a scalar column: what scalarProblem has left once objects and arrays are refused. */
type Scalar = string | number | boolean | JsonNumber;

/** PostgreSQL's trim of a number's or a boolean's input text. */
function pgTrim(text: string): string {
  return text.replace(SPACE, '');
}

/** A number as its decimal (a JSON number, or numeric text), or null for anything else. */
function decimalOfValue(value: ExactJsonValue): Decimal | null {
  if (typeof value === 'number' || value instanceof JsonNumber) return decimalOf(numberLiteral(value));
  return typeof value === 'string' ? decimalOf(pgTrim(value)) : null;
}

/** The text PostgreSQL reads for a scalar from the stored JSON: a number as PostgreSQL writes numerics. */
export function scalarText(value: Scalar): string {
  // a safe integer's text is its digits: what the general path gives, without parsing the number's text
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  if (typeof value === 'number' || value instanceof JsonNumber) return numericText(decimalOf(numberLiteral(value))!);
  return String(value);
}

function encodedBytes(value: ExactJsonValue): number {
  if (typeof value === 'string') return value.length * 3 <= MAX_VALUE_BYTES ? 0 : Buffer.byteLength(value);
  return typeof value === 'object' ? Buffer.byteLength(JSON.stringify(value)) : 0;
}

function integerProblem(column: TargetColumn, value: ExactJsonValue): string | null {
  if (typeof value === 'boolean') return `expects an integer (${column.sqlType})`;
  const [min, max] = INTEGER_RANGES[column.baseType];
  if (typeof value === 'number' && Number.isSafeInteger(value))
    return value < min || value > max ? `is out of range for ${column.sqlType}` : null;
  // A JSON number is read as the text PostgreSQL gives it (1e3 is 1000); text must be digits, as integer input wants.
  const text = typeof value === 'string' ? pgTrim(value) : scalarText(value as number | JsonNumber);
  if (!/^[+-]?\d+$/.test(text)) return `expects an integer (${column.sqlType})`;
  const n = text.length > 21 ? null : BigInt(text);
  return n === null || n < min || n > max ? `is out of range for ${column.sqlType}` : null;
}

/** NaN and the infinities: numeric holds them, but no sum or check means anything with them, so they are refused. */
function numericProblem(column: TargetColumn, value: ExactJsonValue): string | null {
  const decimal = decimalOfValue(value);
  const text = typeof value === 'string' ? pgTrim(value) : decimal ? numberLiteral(value as number | JsonNumber) : '';
  if (SPECIAL_FLOATS.test(text)) return `takes no NaN or infinity (${column.sqlType})`;
  if (!decimal || !NUMERIC_TEXT.test(text)) return `expects a number (${column.sqlType})`;
  const range = numericRangeProblem(decimal);
  if (range) return `${range} (${column.sqlType})`;
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

/** NaN and the infinities are values of float4 and float8 (IEEE 754), as PostgreSQL takes them, except as increments. */
function floatProblem(column: TargetColumn, value: ExactJsonValue): string | null {
  const text =
    typeof value === 'string'
      ? pgTrim(value)
      : typeof value === 'number' || value instanceof JsonNumber
        ? numberLiteral(value)
        : null;
  if (text === null || !(SPECIAL_FLOATS.test(text) || NUMERIC_TEXT.test(text)))
    return `expects a number (${column.sqlType})`;
  if (SPECIAL_FLOATS.test(text)) return null;
  const n = column.baseType === 'float4' ? Math.fround(Number(text)) : Number(text);
  const zeroText = !/[1-9]/.test(text.split(/e/i)[0]);
  // Overflow to infinity and underflow to zero are errors in PostgreSQL (denormals are fine).
  return !Number.isFinite(n) || (n === 0 && !zeroText) ? `is out of range for ${column.sqlType}` : null;
}

/** An increment's delta: a finite number (NaN or an infinity would swallow every later increment). */
export function incrementProblem(value: ExactJsonValue): string | null {
  const text = typeof value === 'string' ? pgTrim(value) : null;
  return text !== null && SPECIAL_FLOATS.test(text) ? 'cannot be incremented by NaN or an infinity' : null;
}

function textProblem(column: TargetColumn, text: string): string | null {
  const maxLength = column.typmod > 4 ? column.typmod - 4 : null;
  if (maxLength !== null && [...text.replace(/ +$/, '')].length > maxLength)
    return `is longer than ${maxLength} characters (${column.sqlType})`;
  return null;
}

/** A date-time with a time zone, on the calendar and the clock: `2026-11-21T10:00:00Z`, `2026-11-21 10:00+05:30`. */
/** A date or date-time in ISO 8601's form PostgreSQL reads the same (a zone optional), of a real day and time. */
export function isTimestampText(text: string): boolean {
  return dateProblem(TIMESTAMP_TEXT.exec(text)) === null;
}

export function isInstant(text: string): boolean {
  const match = TIMESTAMP_TEXT.exec(text);
  return match?.[5] !== undefined && match[10] !== undefined && dateProblem(match) === null;
}

/** What dates and timestamps read as the infinities (not `+infinity`). */
function isInfinity(text: string): boolean {
  return /^-?infinity$/i.test(text);
}

/** Checks a DATE_TEXT or TIMESTAMP_TEXT match: a real calendar date and, when given, a real time of day. */
function dateProblem(match: RegExpExecArray | null): string | null {
  if (!match) return 'malformed';
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (year < 1 || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return 'not a calendar date';
  if (match[5] !== undefined && !isClockTime(match[5], match[6], match[8], match[9])) return 'not a time of day';
  if (!isOffset(match[10])) return 'not a time zone offset';
  return null;
}

/** Z, or an offset PostgreSQL takes: at most 15:59 either way. */
function isOffset(zone: string | undefined): boolean {
  const offset = /^[+-](\d{2}):?(\d{2})?$/.exec(zone ?? 'Z');
  return offset === null || (Number(offset[1]) <= 15 && Number(offset[2] ?? 0) <= 59);
}

function timeIsValid(match: RegExpExecArray | null): boolean {
  return match !== null && isClockTime(match[1], match[2], match[4], match[5]) && isOffset(match[6]);
}

/** 24:00:00 is allowed, as in PostgreSQL, but nothing after it. */
function isClockTime(h: string, m: string, s: string | undefined, fraction: string | undefined): boolean {
  const [hours, minutes, seconds] = [Number(h), Number(m), Number(s ?? 0) + Number(fraction ?? 0)];
  return minutes < 60 && seconds < 60 && (hours < 24 || (hours === 24 && minutes === 0 && seconds === 0));
}

export const MAX_JSON_DEPTH = 32;

function jsonProblem(value: ExactJsonValue): string | null {
  if (depthOf(value) > MAX_JSON_DEPTH) return `is nested deeper than ${MAX_JSON_DEPTH} levels`;
  return containsNul(value) ? 'contains a NUL character' : null;
}

/** Every level either holds only arrays, all of one length and shape and none empty, or no arrays at all. */
function isRectangular(values: ExactJsonValue[]): boolean {
  const arrays = values.filter(Array.isArray) as ExactJsonValue[][];
  if (arrays.length === 0) return true;
  if (arrays.length !== values.length || arrays.some((a) => a.length === 0)) return false;
  const shape = JSON.stringify(shapeOf(arrays[0]));
  return arrays.every((a) => JSON.stringify(shapeOf(a)) === shape && isRectangular(a));
}

function shapeOf(value: ExactJsonValue): number[] {
  return Array.isArray(value) ? [value.length, ...(value.length > 0 ? shapeOf(value[0]) : [])] : [];
}

function depthOf(value: ExactJsonValue): number {
  if (value === null || typeof value !== 'object' || value instanceof JsonNumber) return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  let deepest = 0;
  for (const child of children) deepest = Math.max(deepest, depthOf(child));
  return 1 + deepest;
}

function containsNul(value: ExactJsonValue): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (value instanceof JsonNumber) return false;
  if (Array.isArray(value)) return value.some(containsNul);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).some(([k, v]) => k.includes('\u0000') || containsNul(v));
  return false;
}
