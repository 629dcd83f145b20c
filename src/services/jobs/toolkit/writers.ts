import type { TargetTable } from '../../../interfaces/catalog.interfaces';
import type { ClaimedOperation } from '../../../interfaces/chunk.interfaces';
import type { ICreateBatchOperationRequest, OperationType, RowValues } from '../../../interfaces/operation.interfaces';
import { StatementApplier } from '../../engine/statement-applier.service';
import { planStatements } from '../../engine/statement-planner';
import { ExactJsonValue, JsonNumber, stringifyJson } from '../../exact-json';
import { checkShape } from '../../ingest/operation-validator.service';
import { planningOf } from '../../ingest/row-identity';
import type { CatalogService } from '../../storage/catalog.service';
import { quoteIdent } from '../../storage/database';
import { isConcurrencyConflict, isConnectionError } from '../../storage/database-error';
import { copyInto } from '../../storage/pg-client';
import type { ItemWriter, WriteRefusal } from '../job-definition';

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
  const { columns } = options;
  return async (tx, items) => {
    let text = '';
    for (const item of items) {
      for (let i = 0; i < columns.length; i++) text += (i === 0 ? '' : ',') + csvField(item[columns[i]]);
      text += '\n';
    }
    await copyInto(tx, copy, Buffer.from(text));
  };
}

/** Text CSV must quote: a delimiter, quote or line end in it, or read as NULL (`\N`) or the end of data (`\.`). */
const QUOTED = /[",\r\n]|^$|^\\/;

function csvField(value: unknown): string {
  if (typeof value === 'number') return String(value);
  const text = valueText(value);
  if (text === null) return '\\N';
  return QUOTED.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The five ways a tableWriter applies an item, the operation queue's types. */
export type WriteType = OperationType;

export interface TableWriterOptions {
  /** The catalog of target tables: the job injects CatalogService and passes it. */
  catalog: CatalogService;
  /** A target table (`table` or `schema.table`, in BATCH_TARGET_SCHEMAS). */
  table: string;
  type: WriteType;
  /** The columns written (by default each item's fields); for increment, the ones added to. */
  columns?: string[];
  /** update, delete, increment: the columns that find the row (by default the table's primary key). */
  key?: string[];
  /** upsert: the unique key whose conflict updates the row (by default the primary key). */
  conflictKey?: string[];
}

/** Where a tableWriter stages a chunk's items for the engine's statements: a temporary table of the connection. */
const STAGED = 'pg_temp.batch_job_items';
const STAGE =
  'CREATE TEMPORARY TABLE IF NOT EXISTS batch_job_items ' +
  '(id bigint PRIMARY KEY, row_values jsonb, row_key jsonb, priority int NOT NULL DEFAULT 0) ON COMMIT DELETE ROWS; ' +
  // a writer called again in the same transaction; deferred constraints checked per statement, as the queue's
  `DELETE FROM ${STAGED}; SET CONSTRAINTS ALL IMMEDIATE`;

/** A chunk is the job's to size: the planner cuts statements only where sequential equivalence asks. */
const NO_LIMITS = { rows: Number.MAX_SAFE_INTEGER, bytes: Number.MAX_SAFE_INTEGER };

/**
 * Items applied as the operation queue applies its operations: each item an operation of `type` on the table, checked
 * against the catalog as a created operation is (an unknown column, a value its column cannot take, a missing key: that
 * item refused), staged in a temporary table, planned by the queue's statement planner into a few set-based
 * statements whose result is that of applying the items one after the other, in order, and applied by its statements.
 * A statement that fails is applied in parts down to the items at fault, in the same round trip, which are refused
 * (the chunk step skips them within `skipLimit`) while the others are written; a lost connection or a deadlock fails
 * the chunk as a whole.
 */
export function tableWriter<T extends Row = Row>(options: TableWriterOptions): ItemWriter<T> {
  const applier = new StatementApplier();
  const failsChunk = (error: unknown) => isConnectionError(error) || isConcurrencyConflict(error);
  return async (tx, items, step) => {
    if (items.length === 0) return;
    // the catalog as CatalogService caches it (BATCH_CATALOG_TTL): a column added since is seen once it reloads
    const table = await options.catalog.find(options.table);
    if (!table) throw new Error(`no target table ${options.table}`);
    const refused: WriteRefusal[] = [];
    const operations: ClaimedOperation[] = [];
    const staged: string[] = [];
    items.forEach((item, index) => {
      const request = requestOf(table, options, item);
      const problems = checkShape(table, request);
      if (problems.length > 0) {
        const error = Object.assign(new Error(problems.map((p) => p.message).join('; ')), { code: problems[0].code });
        return refused.push({ index, error });
      }
      const [values, key] = [request.values, request.key].map((v) => (v === undefined ? null : stringifyJson(v)));
      const id = String(index + 1);
      staged.push(`${id}\t${copyText(values)}\t${copyText(key)}\n`);
      const conflictKey = request.type === 'upsert' ? (request.conflictKey ?? table.primaryKey) : null;
      const planning = planningOf(table, {
        type: request.type,
        values: request.values ?? null,
        key: request.key ?? null,
        conflictKey,
      });
      const bytes = (values?.length ?? 0) + (key?.length ?? 0);
      const unclaimed = { clientId: '', priority: 0, attempts: 0, failures: 0, chars: 0, deferred: false };
      operations.push({ id, count: 1, target: table.name, ...planning, bytes, ...unclaimed });
    });
    if (operations.length === 0) return refused;
    await tx.query(STAGE);
    await copyInto(tx, `COPY ${STAGED} (id, row_values, row_key) FROM STDIN`, Buffer.from(staged.join('')));
    for (const plan of planStatements(table, operations, NO_LIMITS)) {
      const { outcomes, error: whole } = await applier.applyOrSettle(tx, { ...plan, source: STAGED }, failsChunk);
      if (whole !== null) step.counts.rollbackCount += 1; // the statement, before its parts
      for (const { operation, error } of outcomes)
        if (error)
          refused.push({ index: Number(operation.id) - 1, error: Object.assign(new Error(error.message), error) });
    }
    return refused.sort((a, b) => a.index - b.index);
  };
}

/** An item as the operation of `options.type` it stands for: its key columns in `key` (or `conflictKey`), the rest in `values`. */
function requestOf(table: TargetTable, options: TableWriterOptions, item: Row): ICreateBatchOperationRequest {
  const fields = (options.columns ?? Object.keys(item)).filter((name) => item[name] !== undefined);
  const { type } = options;
  const pick = (names: string[]) => {
    const row: Record<string, ExactJsonValue> = {};
    for (const name of names) row[name] = jsonValue(item[name]);
    return row as RowValues;
  };
  if (type === 'insert') return { target: table.name, type, values: pick(fields) };
  if (type === 'upsert') return { target: table.name, type, values: pick(fields), conflictKey: options.conflictKey };
  const key = options.key ?? table.primaryKey;
  if (!key) throw new Error(`${table.name} has no primary key: a ${type} writer needs a "key"`);
  const values = type === 'delete' ? undefined : pick(fields.filter((name) => !key.includes(name)));
  return { target: table.name, type, values, key: pick(key.filter((name) => item[name] !== undefined)) };
}

/**
 * A field of an item as the JSON value an operation would carry: a Date as ISO 8601, a bigint exactly, a Buffer as
 * `bytea` hex, NaN and the infinities as float input reads them; arrays and objects element by element.
 */
function jsonValue(value: unknown): ExactJsonValue {
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'bigint') return new JsonNumber(value.toString());
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (Array.isArray(value)) return value.map(jsonValue);
  if (typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([name, field]) => [name, jsonValue(field)]));
  return value as string | boolean;
}

/** JSON text as a field of COPY's text format (JSON escapes every control character; a backslash is doubled). */
function copyText(json: string | null): string {
  return json === null ? '\\N' : json.replace(/\\/g, '\\\\');
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
