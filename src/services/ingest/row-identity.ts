import type { ICreateBatchOperationRequest, JsonValue, RowValues } from '../../interfaces/operation.interfaces';
import type { TargetColumn, TargetTable } from '../../interfaces/catalog.interfaces';
import { scalarText } from './column-value';
import { JsonNumber } from '../exact-json';

/**
 * What the statement planner needs to know of an operation, computed once when it is created (with the values and
 * the catalog at hand) and stored with it, so that applying it never reads its values into the service:
 * - its shape: type, the columns it writes and its key columns, and the version of the table's unique keys that
 *   the identity was computed against (a key added or retyped since makes the planner give the operation a
 *   statement of its own);
 * - its identity: the rows it may touch, as hashes of (unique key, canonical values), and how it addresses them.
 * Equal rows always give equal hashes; different rows may collide, which only makes the planner more careful.
 */
export interface Planning {
  shape: string;
  identity: string;
}

export interface Shape {
  type: ICreateBatchOperationRequest['type'];
  /** The columns written (values), sorted. */
  columns: string[];
  /** update/delete/increment: the key's columns, sorted; upsert: the conflict key; insert: null. */
  keyColumns: string[] | null;
  keysVersion: string;
}

export interface Identity {
  /** The rows the operation may touch: equal tokens, same row. */
  tokens: string[];
  /** Key-addressed operations: their unique key's name, or null when its values have no canonical form; inserts: undefined. */
  key?: string | null;
  /** Inserts and upserts: the names of the unique keys they give canonical values for. */
  keys: string[];
  /** An update or increment of a unique column: it may collide with any row. */
  barrier: boolean;
}

type Operation = Pick<ICreateBatchOperationRequest, 'type'> & {
  values: RowValues | null;
  key: RowValues | null;
  conflictKey: string[] | null;
};

export function planningOf(table: TargetTable, op: Operation): Planning {
  const { tokens, key, keys, barrier } = identify(table, op);
  return {
    shape: shapeOf(table, op),
    identity: `${tokens.join(' ')}|${key === undefined ? '' : (key ?? '?')}|${keys.join(' ')}|${barrier ? 'b' : ''}`,
  };
}

/** Per table, the shapes of its operations by their columns as given: a bulk request's operations repeat a few. */
const shapesOfTables = new WeakMap<TargetTable, Map<string, string>>();

function shapeOf(table: TargetTable, op: Operation): string {
  const columns = Object.keys(op.values ?? {});
  const keyColumns = op.type === 'upsert' ? (op.conflictKey ?? []) : Object.keys(op.key ?? {});
  // no identifier holds a NUL
  const given = `${op.type}\u0000${columns.length}\u0000${columns.join('\u0000')}\u0000${keyColumns.join('\u0000')}`;
  let shapes = shapesOfTables.get(table);
  if (!shapes) shapesOfTables.set(table, (shapes = new Map()));
  let shape = shapes.get(given);
  if (shape === undefined) {
    shape = JSON.stringify([
      op.type,
      [...columns].sort(),
      op.type === 'insert' ? null : op.type === 'upsert' ? op.conflictKey : [...keyColumns].sort(),
      keysVersion(table),
    ]);
    if (shapes.size >= 1000) shapes.clear();
    shapes.set(given, shape);
  }
  return shape;
}

const shapes = new Map<string, Shape>();

/** The stored shape, parsed (shapes repeat, so each is parsed once). */
export function parseShape(text: string): Shape {
  let shape = shapes.get(text);
  if (!shape) {
    const [type, columns, keyColumns, keysVersion] = JSON.parse(text) as [
      Shape['type'],
      string[],
      string[] | null,
      string,
    ];
    shape = { type, columns, keyColumns, keysVersion };
    if (shapes.size > 10_000) shapes.clear();
    shapes.set(text, shape);
  }
  return shape;
}

/** The type a stored shape names; undefined when the shape cannot be read (its operation cannot be applied). */
export function shapeType(text: string): Shape['type'] | undefined {
  try {
    return parseShape(text).type;
  } catch {
    return undefined;
  }
}

/** How identities address their rows (all but the tokens): few of them, shared by many operations. */
const addressings = new Map<string, Omit<Identity, 'tokens'>>();

/** The stored identity, parsed; what follows its tokens repeats (every insert of a table gives the same keys). */
export function parseIdentity(text: string): Identity {
  const end = text.indexOf('|');
  const tokens = end < 0 ? text : text.slice(0, end);
  const rest = end < 0 ? '' : text.slice(end + 1);
  let addressing = addressings.get(rest);
  if (!addressing) {
    const [key, keys, barrier] = rest.split('|');
    addressing = {
      key: key === '' ? undefined : key === '?' ? null : key,
      keys: keys ? keys.split(' ') : [],
      barrier: barrier === 'b',
    };
    if (addressings.size > 10_000) addressings.clear();
    addressings.set(rest, addressing);
  }
  return { tokens: tokens ? tokens.split(' ') : [], ...addressing };
}

const keysVersions = new WeakMap<TargetTable, string>();

/** The table's unique keys and their columns' types: what identities depend on (once per table the catalog loads). */
export function keysVersion(table: TargetTable): string {
  let version = keysVersions.get(table);
  if (version === undefined) {
    const keys = table.uniqueKeys.map((k) =>
      k.map((name) => [name, table.columns.get(name)?.baseType, table.columns.get(name)?.isArray]),
    );
    keysVersions.set(table, (version = hash(JSON.stringify(keys))));
  }
  return version;
}

const uniqueColumnsOfTables = new WeakMap<TargetTable, Set<string>>();

function identify(table: TargetTable, op: Operation): Identity {
  let uniqueColumns = uniqueColumnsOfTables.get(table);
  if (!uniqueColumns) uniqueColumnsOfTables.set(table, (uniqueColumns = new Set(table.uniqueKeys.flat())));
  if (op.type === 'insert' || op.type === 'upsert') {
    const values = op.values ?? {};
    // An upsert that finds its row sets every other given column: where that is a unique column, the row's old
    // value under that key is unknown here, so the key can no longer tell this row from others.
    const conflictKey = op.conflictKey ?? table.primaryKey ?? [];
    const changed =
      op.type === 'upsert' ? Object.keys(values).filter((c) => uniqueColumns.has(c) && !conflictKey.includes(c)) : [];
    const tokens: string[] = [];
    const keys: string[] = [];
    for (const [index, uniqueKey] of table.uniqueKeys.entries()) {
      if (!uniqueKey.every((c) => values[c] !== undefined && values[c] !== null)) continue;
      const { token, canonical } = keyToken(table, uniqueKey, values);
      tokens.push(token);
      if (canonical && !uniqueKey.some((c) => changed.includes(c))) keys.push(keyName(index));
    }
    return { tokens, keys, barrier: false };
  }
  const keyColumns = Object.keys(op.key ?? {});
  const { token, canonical } = keyToken(table, keyColumns, op.key ?? {});
  const index = table.uniqueKeys.findIndex(
    (k) => k.length === keyColumns.length && k.every((c) => keyColumns.includes(c)),
  );
  const changesUniqueColumn = op.type !== 'delete' && Object.keys(op.values ?? {}).some((c) => uniqueColumns.has(c));
  return {
    tokens: [token],
    key: canonical && index >= 0 ? keyName(index) : null,
    keys: [],
    barrier: changesUniqueColumn,
  };
}

/** The hashed name of the row that these key columns and values address. */
function keyToken(table: TargetTable, columns: string[], row: RowValues): { token: string; canonical: boolean } {
  const sorted = [...columns].sort();
  let canonical = true;
  const values = sorted.map((name) => {
    const column = table.columns.get(name);
    const value = column ? canonicalValue(column, row[name]) : null;
    if (value !== null) return value;
    canonical = false;
    return JSON.stringify(row[name]);
  });
  return { token: hash(`${sorted.join('\u0000')}\u0001${values.join('\u0002')}`), canonical };
}

/** A unique key by its place among the table's (the shape's keysVersion pins that list). */
function keyName(index: number): string {
  return `k${index}`;
}

/** The one text a value of this type has, where equal values always give equal texts; null when unknown. */
export function canonicalValue(column: TargetColumn, value: JsonValue | undefined): string | null {
  if (value === null || value === undefined || column.isArray) return null;
  if (typeof value === 'object' && !(value instanceof JsonNumber)) return null;
  const text = scalarText(value);
  switch (column.baseType) {
    case 'int2':
    case 'int4':
    case 'int8':
      if (typeof value === 'number' && Number.isSafeInteger(value)) return text;
      return /^[ \t\n\r\v\f]*[+-]?\d+[ \t\n\r\v\f]*$/.test(text) ? BigInt(text.trim()).toString() : null;
    case 'text':
    case 'varchar':
      return text;
    case 'uuid':
      return text.toLowerCase().replace(/[{}-]/g, '');
    default:
      return column.enumLabels ? text : null;
  }
}

/** FNV-1a, 32 bits, in base 36: short, and a collision only costs a statement. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36);
}
