import type { TargetColumn } from '../../interfaces/catalog.interfaces';
import { ByteWriter } from '../byte-writer';
import { JsonNumber, parseJson, stringifyJson } from '../exact-json';

/** The fields of one CSV record (the header): RFC 4180 quoting, with `quote` doubled inside a quoted field. */
export function csvFields(record: string, delimiter: string, quote: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < record.length; i++) {
    const char = record[i];
    if (quoted) {
      if (char !== quote) field += char;
      else if (record[i + 1] === quote) field += record[++i];
      else quoted = false;
    } else if (char === quote) quoted = true;
    else if (char === delimiter) {
      fields.push(field);
      field = '';
    } else field += char;
  }
  fields.push(field.replace(/\r$/, ''));
  return fields;
}

/** An NDJSON record as COPY takes it: its columns (keys, in its order) and one CSV line of their values. */
export interface CsvRecord {
  columns: string[];
  line: string;
}

/** Why an NDJSON record cannot be loaded: a code of the service, its message, and the column when one is at fault. */
export class RecordProblem extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly column: string | null = null,
  ) {
    super(message);
  }
}

/** How deep an NDJSON record may nest (the record itself is the first level), as deep as a request body. */
export const MAX_RECORD_DEPTH = 64;

/**
 * An NDJSON line as a CSV record of its keys' values, for the same COPY as a CSV file (numbers kept exactly as
 * written, a JSON null as NULL, an object or an array as its JSON text, or as an array literal for an array column);
 * a line that is not a JSON object of the target's columns, each once, nested at most MAX_RECORD_DEPTH levels, is a
 * RecordProblem.
 */
export function ndjsonRecord(text: string, columns: Map<string, TargetColumn>): CsvRecord {
  // before anything recursive (a parser, a writer) meets the record, and before JSON.parse keeps a key's last value
  const shape = jsonShape(text);
  if (shape.tooDeep)
    throw new RecordProblem('NESTED_TOO_DEEP', `the record is nested deeper than ${MAX_RECORD_DEPTH} levels`);
  let value: unknown;
  try {
    value = parseJson(text);
  } catch (error) {
    throw new RecordProblem('MALFORMED_JSON', `not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof JsonNumber)
    throw new RecordProblem('MALFORMED_JSON', 'a record must be a JSON object');
  const names = Object.keys(value);
  if (names.length === 0) throw new RecordProblem('VALIDATION_FAILED', 'the record names no column, as a write needs');
  for (const name of names)
    if (!columns.has(name)) throw new RecordProblem('UNKNOWN_COLUMN', `the target has no column ${name}`, name);
  if (shape.twice)
    throw new RecordProblem('DUPLICATE_KEY', `the key ${shape.twice.key} is given twice`, shape.twice.column);
  const fields = names.map((name) => csvField((value as Record<string, unknown>)[name], columns.get(name)!));
  const line = fields.join(',') + '\n';
  // only an escape can make one (the text is UTF-8); written as UTF-8 it would be stored as U+FFFD
  if (SURROGATE_ESCAPE.test(text) && HAS_LONE_SURROGATE.test(line))
    throw new RecordProblem('VALIDATION_FAILED', 'a string holds a lone UTF-16 surrogate (not Unicode text)');
  return { columns: names, line };
}

/**
 * What JSON text holds that JSON.parse does not tell, found without parsing it: whether it nests deeper than
 * MAX_RECORD_DEPTH, and the first key given twice in one object (with the record's key it is under). Malformed text
 * gives some answer; the parse that follows refuses it.
 */
function jsonShape(text: string): { tooDeep: boolean; twice: { key: string; column: string } | null } {
  const objects: (Set<string> | null)[] = []; // the keys of each open object; null for an array
  let twice: { key: string; column: string } | null = null;
  let column = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      if (objects.length === MAX_RECORD_DEPTH) return { tooDeep: true, twice };
      objects.push(c === 0x7b ? new Set() : null);
    } else if (c === 0x7d || c === 0x5d) objects.pop();
    else if (c === 0x22) {
      const start = i + 1;
      let escaped = false;
      for (i = start; i < text.length && text.charCodeAt(i) !== 0x22; i++)
        if (text.charCodeAt(i) === 0x5c) [escaped, i] = [true, i + 1];
      const keys = objects[objects.length - 1];
      let after = i + 1;
      while (after < text.length && JSON_SPACE.test(text[after])) after++;
      if (!keys || text[after] !== ':' || twice) continue; // a value, not a key
      const key = escaped ? keyOf(text.slice(start - 1, i + 1)) : text.slice(start, i);
      if (objects.length === 1) column = key;
      if (keys.has(key)) twice = { key, column };
      keys.add(key);
    }
  }
  return { tooDeep: false, twice };
}

const JSON_SPACE = /[ \t\n\r]/;

/** A key's JSON string as the key it names ("q\u0074y" is qty); malformed, its text. */
function keyOf(literal: string): string {
  try {
    return JSON.parse(literal) as string;
  } catch {
    return literal;
  }
}

/** What in JSON text may parse to a UTF-16 surrogate: its escape. */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** A UTF-16 surrogate without its other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const HAS_LONE_SURROGATE = new RegExp(LONE_SURROGATE.source);

/**
 * Text of a reject (its record, message, column) as it is stored and shown: a NUL, which PostgreSQL's text and jsonb
 * cannot hold, as the six characters \u0000, and a lone UTF-16 surrogate as U+FFFD, as bytes that are not UTF-8 already
 * are once read as text. The reject's byteOffset finds the bytes themselves.
 */
export function shownText(text: string): string {
  return text.replace(/\0/g, '\\u0000').replace(LONE_SURROGATE, '\ufffd');
}

function csvField(value: unknown, column: TargetColumn): string {
  if (value === null) return '';
  if (typeof value === 'string') return quoted(isJson(column) ? stringifyJson(value) : value);
  if (value instanceof JsonNumber) return value.text;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && column.isArray) return quoted(arrayLiteral(value));
  return quoted(stringifyJson(value));
}

/** A json or jsonb column (not an array of them): a string goes into it as a JSON string, as an operation's does. */
function isJson(column: TargetColumn): boolean {
  return !column.isArray && (column.baseType === 'json' || column.baseType === 'jsonb');
}

function quoted(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

/** A JSON array as PostgreSQL's array literal: `{1,"a b",NULL,{2,3}}`. */
function arrayLiteral(values: unknown[]): string {
  const element = (value: unknown): string => {
    if (value === null) return 'NULL';
    if (Array.isArray(value)) return arrayLiteral(value);
    const text = typeof value === 'string' ? value : value instanceof JsonNumber ? value.text : stringifyJson(value);
    return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  };
  return `{${values.map(element).join(',')}}`;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const NEWLINE = 0x0a;
const MINUS = 0x2d;
const POINT = 0x2e;
const ZERO = 0x30;
const NULL = Buffer.from('null');
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
/** JSON's white space. */
const SPACE = new Uint8Array(256);
for (const byte of [0x20, 0x09, 0x0a, 0x0d]) SPACE[byte] = 1;
/** What ends a literal (a number, true, false or null) in an object: white space, a comma, the object's end. */
const LITERAL_END = new Uint8Array(256);
for (const byte of [0x20, 0x09, 0x0a, 0x0d, COMMA, CLOSE]) LITERAL_END[byte] = 1;
/** A number JSON.parse reads exactly and String() writes back as a decimal: no exponent, under 16 characters. */
const SHORT_NUMBER = /^-?(?:0|[1-9]\d*)(\.\d+)?$/;

/** The names of the last record's keys, and their bytes, which the next record's keys are compared with first. */
export interface RecordKeys {
  names: string[];
  bytes: Buffer[];
}

/**
 * ndjsonRecord for the records most data sets hold, read from the UTF-8 bytes [start, end) of `data` and written to
 * `out` as the same CSV line, without making the record a string or parsing it into values: an object of known
 * columns, each once, whose values are strings without escapes or control characters, true, false, null, or numbers
 * without an exponent under 16 characters. Returns the record's column names (the last record's, `keys`, when they
 * are the same), or null, having written nothing, for any other record (ndjsonRecord then reads it). The bytes must
 * be valid UTF-8 (a string's bytes are written as they are).
 */
export function flatRecordInto(
  data: Buffer,
  start: number,
  end: number,
  columns: Map<string, TargetColumn>,
  out: ByteWriter,
  keys: RecordKeys,
): string[] | null {
  const mark = out.length;
  const fail = () => {
    out.length = mark;
    return null;
  };
  const names: string[] = [];
  let at = skipSpace(data, start, end);
  if (data[at] !== OPEN) return fail();
  at = skipSpace(data, at + 1, end);
  if (data[at] === CLOSE) return fail(); // {} is left to ndjsonRecord
  for (;;) {
    if (data[at] !== QUOTE) return fail();
    const nameEnd = plainStringEnd(data, at + 1, end);
    if (nameEnd < 0) return fail();
    const k = names.length;
    const same = k < keys.bytes.length && sameBytes(data, at + 1, nameEnd, keys.bytes[k]);
    const name = same ? keys.names[k] : data.toString('utf8', at + 1, nameEnd);
    // a key that may be an array index comes first among an object's keys; a key given twice keeps its last value
    const lead = data[at + 1];
    if (!columns.has(name) || isDigit(lead) || names.includes(name)) return fail();
    names.push(name);
    at = skipSpace(data, nameEnd + 1, end);
    if (data[at] !== COLON) return fail();
    at = skipSpace(data, at + 1, end);
    if (k > 0) out.byte(COMMA);
    if (data[at] === QUOTE) {
      const valueEnd = plainStringEnd(data, at + 1, end);
      if (valueEnd < 0 || isJson(columns.get(name)!)) return fail();
      out.bytes(data, at, valueEnd + 1); // quoted as CSV quotes it: no quote inside
      at = valueEnd + 1;
    } else {
      let literalEnd = at;
      while (literalEnd < end && !LITERAL_END[data[literalEnd]]) literalEnd++;
      if (!writeLiteral(data, at, literalEnd, out)) return fail();
      at = literalEnd;
    }
    at = skipSpace(data, at, end);
    if (data[at] === CLOSE) {
      if (skipSpace(data, at + 1, end) !== end) return fail();
      out.byte(NEWLINE);
      if (names.length === keys.names.length && names.every((name, i) => name === keys.names[i])) return keys.names;
      keys.names = names;
      keys.bytes = names.map((name) => Buffer.from(name));
      return names;
    }
    if (data[at] !== COMMA) return fail();
    at = skipSpace(data, at + 1, end);
  }
}

/** A literal as csvField writes its value: null as nothing, true and false as they are, a number as String() does. */
function writeLiteral(data: Buffer, start: number, end: number, out: ByteWriter): boolean {
  if (sameBytes(data, start, end, NULL)) return true;
  if (sameBytes(data, start, end, TRUE) || sameBytes(data, start, end, FALSE) || writtenAsIs(data, start, end)) {
    out.bytes(data, start, end);
    return true;
  }
  const literal = data.toString('latin1', start, end);
  if (literal.length < 16 && SHORT_NUMBER.test(literal)) {
    out.text(String(Number(literal)));
    return true;
  }
  return false;
}

/**
 * Whether the bytes are a number String(Number()) writes back the same: under 16 characters (at most 15 digits, which
 * a double keeps), no leading zero, a fraction that ends in a digit other than 0 and, below 1, starts with one (no
 * exponent), and not -0.
 */
function writtenAsIs(data: Buffer, start: number, end: number): boolean {
  if (end - start >= 16) return false;
  let at = data[start] === MINUS ? start + 1 : start;
  const integerStart = at;
  while (at < end && isDigit(data[at])) at++;
  const integerDigits = at - integerStart;
  if (integerDigits === 0 || (integerDigits > 1 && data[integerStart] === ZERO)) return false;
  if (at === end) return !(data[integerStart] === ZERO && integerStart > start); // -0 is written 0
  if (data[at] !== POINT) return false;
  const fractionStart = ++at;
  while (at < end && isDigit(data[at])) at++;
  if (at !== end || at === fractionStart || data[end - 1] === ZERO) return false;
  return data[integerStart] !== ZERO || data[fractionStart] !== ZERO;
}

function isDigit(byte: number): boolean {
  return byte >= ZERO && byte <= ZERO + 9;
}

/** Whether the bytes [start, end) of `data` are `bytes` (for a few bytes a loop beats Buffer.compare's native call). */
function sameBytes(data: Buffer, start: number, end: number, bytes: Buffer): boolean {
  if (end - start !== bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (data[start + i] !== bytes[i]) return false;
  return true;
}

/** Where the JSON string whose text starts at `at` ends (its closing quote), when it holds no escape and no control character; else -1. */
function plainStringEnd(data: Buffer, at: number, end: number): number {
  for (let i = at; i < end; i++) {
    const byte = data[i];
    if (byte === QUOTE) return i;
    if (byte === BACKSLASH || byte < 0x20) return -1;
  }
  return -1;
}

function skipSpace(data: Buffer, at: number, end: number): number {
  while (at < end && SPACE[data[at]]) at++;
  return at;
}
