import type { TargetColumn } from '../../interfaces/catalog.interfaces';
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

/**
 * An NDJSON line as a CSV record of its keys' values, for the same COPY as a CSV file (numbers kept exactly as
 * written, a JSON null as NULL, an object or an array as its JSON text, or as an array literal for an array column);
 * a line that is not a JSON object of the target's columns is a RecordProblem.
 */
export function ndjsonRecord(text: string, columns: Map<string, TargetColumn>): CsvRecord {
  let value: unknown;
  try {
    value = parseJson(text);
  } catch (error) {
    throw new RecordProblem('MALFORMED_JSON', `not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof JsonNumber)
    throw new RecordProblem('MALFORMED_JSON', 'a record must be a JSON object');
  const names = Object.keys(value);
  const fields = names.map((name) => {
    const column = columns.get(name);
    if (!column) throw new RecordProblem('UNKNOWN_COLUMN', `the target has no column ${name}`, name);
    return csvField((value as Record<string, unknown>)[name], column);
  });
  return { columns: names, line: fields.join(',') + '\n' };
}

function csvField(value: unknown, column: TargetColumn): string {
  if (value === null) return '';
  if (typeof value === 'string') return quoted(value);
  if (value instanceof JsonNumber) return value.text;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && column.isArray) return quoted(arrayLiteral(value));
  return quoted(stringifyJson(value));
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
