import type { TargetColumn, TargetTable } from '../../../interfaces/catalog.interfaces';
import type { CatalogService } from '../../storage/catalog.service';
import { quoteIdent } from '../../storage/database';
import { copyInto } from '../../storage/pg-client';
import type { ItemWriter } from '../job-definition';

/** An item a writer takes: column → value. */
export type Row = Record<string, unknown>;

export interface CopyWriterOptions {
  /** The table (`table` or `schema.table`). */
  table: string;
  /** The columns written, each from the item's field of that name (a missing field is NULL). */
  columns: string[];
}

/**
 * Plain inserts by `COPY … FROM STDIN` (CSV): the fastest way in. Values are written as their text (a Date as ISO
 * 8601, an object as JSON, an array as an array literal) and read by the columns' own types, as an import's are.
 * A chunk `COPY` refuses is written item by item by the chunk step, each under a savepoint, to skip the ones at fault.
 */
export function copyWriter<T extends Row = Row>(options: CopyWriterOptions): ItemWriter<T> {
  const copy =
    `COPY ${qualified(options.table)} (${options.columns.map(quoteIdent).join(', ')}) ` +
    `FROM STDIN (FORMAT csv, NULL '\\N')`;
  return async (tx, items) => {
    const lines = items.map((item) => options.columns.map((column) => csvField(item[column])).join(',') + '\n');
    await copyInto(tx, copy, Buffer.from(lines.join('')));
  };
}

function csvField(value: unknown): string {
  const text = valueText(value);
  return text === null ? '\\N' : `"${text.replace(/"/g, '""')}"`;
}

/** The five ways a tableWriter applies an item, the operation queue's types. */
export type WriteType = 'insert' | 'upsert' | 'update' | 'delete' | 'increment';

export interface TableWriterOptions {
  /** The catalog of target tables: the job injects CatalogService and passes it. */
  catalog: CatalogService;
  /** A target table (`table` or `schema.table`, in BATCH_TARGET_SCHEMAS). */
  table: string;
  type: WriteType;
  /** The columns written (by default the first item's fields); for increment, the ones added to. */
  columns?: string[];
  /** update, delete, increment: the columns that find the row (by default the table's primary key). */
  key?: string[];
  /** upsert: the unique key whose conflict updates the row (by default the primary key). */
  conflictKey?: string[];
}

/**
 * A chunk in one set-based statement: each column's values bound as one array (of text, read by the column's type
 * from the catalog), unnested in the items' order. Items of one chunk that share a key come out as if applied one
 * after the other: an update or upsert keeps the last one's values, an increment adds them all, a delete deletes
 * once. When the statement fails, the chunk step writes the items one at a time to skip the ones at fault.
 */
export function tableWriter<T extends Row = Row>(options: TableWriterOptions): ItemWriter<T> {
  return async (tx, items) => {
    if (items.length === 0) return;
    const fields = options.columns ?? Object.keys(items[0]);
    // the catalog as CatalogService caches it (BATCH_CATALOG_TTL): a column added since is seen once it reloads
    const table = await options.catalog.find(options.table);
    if (!table) throw new Error(`no target table ${options.table}`);
    const plan = planOf(table, options, fields);
    const values = plan.bound.map((column) => items.map((item) => valueText(item[column.name])));
    await tx.query(plan.sql, values);
  };
}

interface Plan {
  sql: string;
  bound: TargetColumn[];
}

function planOf(table: TargetTable, options: TableWriterOptions, fields: string[]): Plan {
  const column = (name: string): TargetColumn => {
    const found = table.columns.get(name);
    if (!found) throw new Error(`${table.name} has no column ${name}`);
    return found;
  };
  const keyOf = (names: string[] | undefined, what: string): TargetColumn[] => {
    const key = names ?? table.primaryKey;
    if (!key || key.length === 0) throw new Error(`${table.name}: a ${options.type} needs a ${what}`);
    return key.map(column);
  };
  const key =
    options.type === 'insert' ? [] : keyOf(options.type === 'upsert' ? options.conflictKey : options.key, 'key');
  const written = fields.filter((name) => !key.some((k) => k.name === name)).map(column);
  const bound = options.type === 'delete' ? key : [...key, ...written];
  const name = `${quoteIdent(table.schema)}.${quoteIdent(table.table)}`;
  const list = (columns: TargetColumn[], prefix = '') => columns.map((c) => prefix + quoteIdent(c.name)).join(', ');
  // the values as the items give them, each cast by its column's type, with the item's place in the chunk
  const rows =
    `SELECT ${bound.map((c) => `v.${quoteIdent(c.name)}::${c.castType} AS ${quoteIdent(c.name)}`).join(', ')}, v.__ord ` +
    `FROM unnest(${bound.map((_, i) => `$${i + 1}::text[]`).join(', ')}) WITH ORDINALITY AS v(${list(bound)}, __ord)`;
  // of the items that share a key, the last one (an update or upsert as if applied one after the other)
  const last = `SELECT DISTINCT ON (${list(key)}) * FROM (${rows}) r ORDER BY ${list(key)}, __ord DESC`;
  const matches = key.map((k) => `t.${quoteIdent(k.name)} = v.${quoteIdent(k.name)}`).join(' AND ');
  switch (options.type) {
    case 'insert':
      return {
        bound,
        sql: `INSERT INTO ${name} (${list(bound)}) SELECT ${list(bound)} FROM (${rows}) v ORDER BY __ord`,
      };
    case 'upsert': {
      const set = written.map((c) => `${quoteIdent(c.name)} = EXCLUDED.${quoteIdent(c.name)}`).join(', ');
      const action = written.length > 0 ? `DO UPDATE SET ${set}` : 'DO NOTHING';
      const insert = `INSERT INTO ${name} (${list(bound)}) SELECT ${list(bound)} FROM (${last}) v`;
      return { bound, sql: `${insert} ON CONFLICT (${list(key)}) ${action}` };
    }
    case 'update': {
      const set = written.map((c) => `${quoteIdent(c.name)} = v.${quoteIdent(c.name)}`).join(', ');
      return { bound, sql: `UPDATE ${name} t SET ${set} FROM (${last}) v WHERE ${matches}` };
    }
    case 'increment': {
      const sums = written.map((c) => `sum(${quoteIdent(c.name)}) AS ${quoteIdent(c.name)}`).join(', ');
      const totals = `SELECT ${list(key)}, ${sums} FROM (${rows}) r GROUP BY ${list(key)}`;
      const set = written.map((c) => `${quoteIdent(c.name)} = t.${quoteIdent(c.name)} + v.${quoteIdent(c.name)}`);
      return { bound, sql: `UPDATE ${name} t SET ${set.join(', ')} FROM (${totals}) v WHERE ${matches}` };
    }
    case 'delete':
      return { bound, sql: `DELETE FROM ${name} t USING (${rows}) v WHERE ${matches}` };
  }
}

/** A value as PostgreSQL's input of its column's type reads it; null for SQL NULL. */
export function valueText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  if (Array.isArray(value)) return `{${value.map(arrayElement).join(',')}}`;
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

function arrayElement(value: unknown): string {
  if (Array.isArray(value)) return valueText(value)!;
  const text = valueText(value);
  return text === null ? 'NULL' : `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function qualified(table: string): string {
  return table.split('.').map(quoteIdent).join('.');
}
