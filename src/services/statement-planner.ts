import type { ClaimedOperation, StatementPlan } from '../interfaces/chunk.interfaces';
import type { JsonValue } from '../interfaces/operation.interfaces';
import type { TargetColumn, TargetTable } from './catalog.service';
import { toSqlText } from './column-value';

/**
 * Plans the operations of one target, in their order of application, into statements that — run in order —
 * give exactly the result of running the operations one at a time.
 *
 * Each operation joins the last statement of its shape (type, columns, key) unless an earlier operation it
 * does not commute with forbids it, in which case it opens a new statement at the end:
 * - the same row (a shared key value) → a later statement: one statement never touches a row twice;
 * - rows that cannot be told apart (addressed through different unique keys, or keys whose values have no
 *   canonical form here) → a later statement;
 * - inserts and upserts keep their relative order (defaults such as sequences are drawn in that order), which
 *   a statement preserves (`ORDER BY ord`), so they may share one;
 * - an update or increment that changes a unique or primary-key column could collide with anything: a
 *   barrier that everything before it precedes and everything after it follows; an upsert that may change
 *   one keeps its order with every operation addressed through that key;
 * - a delete frees every unique value of its row, which an insert into another row may need: with more than
 *   one unique key, deletes and inserts/upserts keep their relative order.
 * Operations that commute can be reordered freely, so only these constraints need keeping. Failures stay
 * those of sequential execution: a failing statement is re-run one operation at a time, in order.
 */
export function planStatements(table: TargetTable, operations: ClaimedOperation[], maxRowsPerStatement: number): StatementPlan[] {
  const statements: StatementPlan[] = [];
  if (table.oneRowStatements) {
    return operations.map((op) => ({ target: op.target, type: op.type, columns: columnsOf(op), keyColumns: keyColumnsOf(table, op), operations: [op] }));
  }
  const lastOfShape = new Map<string, number>();
  const lastOfToken = new Map<string, number>();
  const lastKeyedByKey = new Map<string, number>(); // key-addressed operations, by their (canonical) key
  const lastInsertByKeys = new Map<string, { keys: string[]; index: number }>(); // inserts/upserts, by the keys they give
  let lastUnknownKeyed = -1; // key-addressed operations whose key has no canonical form
  let lastInsert = -1;
  let lastDelete = -1;
  let floor = 0; // after the last barrier
  const deletesMeetInserts = table.uniqueKeys.length > 1;
  const uniqueColumns = new Set(table.uniqueKeys.flat());

  for (const op of operations) {
    const identity = identify(table, uniqueColumns, op);
    let min = identity.barrier ? statements.length : floor;
    for (const token of identity.tokens) min = Math.max(min, (lastOfToken.get(token) ?? -1) + 1);
    min = Math.max(min, lastUnknownKeyed + 1);
    if (identity.key === undefined) {
      min = Math.max(min, lastInsert);
      if (deletesMeetInserts) min = Math.max(min, lastDelete + 1);
      for (const [key, index] of lastKeyedByKey) if (!identity.keys.includes(key)) min = Math.max(min, index + 1);
    } else {
      if (deletesMeetInserts && op.type === 'delete') min = Math.max(min, lastInsert + 1);
      for (const [key, index] of lastKeyedByKey) if (key !== identity.key) min = Math.max(min, index + 1);
      for (const { keys, index } of lastInsertByKeys.values()) if (identity.key === null || !keys.includes(identity.key)) min = Math.max(min, index + 1);
    }

    const columns = columnsOf(op);
    const keyColumns = keyColumnsOf(table, op);
    const shape = `${op.type}\u0000${columns.join(',')}\u0000${keyColumns?.join(',')}`;
    let index = lastOfShape.get(shape);
    if (index === undefined || index < min || statements[index].operations.length >= maxRowsPerStatement) {
      index = statements.length;
      statements.push({ target: op.target, type: op.type, columns, keyColumns, operations: [] });
      lastOfShape.set(shape, index);
    }
    statements[index].operations.push(op);

    for (const token of identity.tokens) lastOfToken.set(token, Math.max(lastOfToken.get(token) ?? -1, index));
    if (identity.key === undefined) {
      lastInsert = Math.max(lastInsert, index);
      const signature = identity.keys.join('\u0000');
      lastInsertByKeys.set(signature, { keys: identity.keys, index: Math.max(lastInsertByKeys.get(signature)?.index ?? -1, index) });
    } else if (identity.key === null) {
      lastUnknownKeyed = Math.max(lastUnknownKeyed, index);
    } else {
      lastKeyedByKey.set(identity.key, Math.max(lastKeyedByKey.get(identity.key) ?? -1, index));
    }
    if (op.type === 'delete') lastDelete = Math.max(lastDelete, index);
    if (identity.barrier) floor = index + 1;
  }
  return statements;
}

interface Identity {
  /** Strings naming the rows the operation touches: a unique key and its values. Equal tokens, same row. */
  tokens: string[];
  /** Key-addressed operations: their key's signature, or null when its values have no canonical form. */
  key?: string | null;
  /** Inserts and upserts: the signatures of the unique keys they give canonical values for. */
  keys: string[];
  barrier: boolean;
}

function identify(table: TargetTable, uniqueColumns: Set<string>, op: ClaimedOperation): Identity {
  if (op.type === 'insert' || op.type === 'upsert') {
    const values = op.values ?? {};
    // An upsert that finds its row sets every other given column: where that is a unique column, the row's old
    // value under that key is unknown here, so the key can no longer tell this row from others.
    const conflictKey = op.conflictKey ?? table.primaryKey ?? [];
    const changed = op.type === 'upsert' ? Object.keys(values).filter((c) => uniqueColumns.has(c) && !conflictKey.includes(c)) : [];
    const tokens: string[] = [];
    const keys: string[] = [];
    for (const uniqueKey of table.uniqueKeys) {
      if (!uniqueKey.every((c) => values[c] !== undefined && values[c] !== null)) continue;
      const { token, canonical } = keyToken(table, uniqueKey, values);
      tokens.push(token);
      if (canonical && !uniqueKey.some((c) => changed.includes(c))) keys.push(signature(uniqueKey));
    }
    return { tokens, keys, barrier: false };
  }
  const keyColumns = Object.keys(op.key ?? {}).sort();
  const { token, canonical } = keyToken(table, keyColumns, op.key ?? {});
  const changesUniqueColumn = op.type !== 'delete' && Object.keys(op.values ?? {}).some((c) => uniqueColumns.has(c));
  return { tokens: [token], key: canonical ? signature(keyColumns) : null, keys: [], barrier: changesUniqueColumn };
}

function keyToken(table: TargetTable, columns: string[], row: Record<string, JsonValue>): { token: string; canonical: boolean } {
  const sorted = [...columns].sort();
  let canonical = true;
  const values = sorted.map((name) => {
    const column = table.columns.get(name);
    const value = column ? canonicalValue(column, row[name]) : null;
    if (value !== null) return value;
    canonical = false;
    return column ? (toSqlText(column, row[name]) ?? '') : JSON.stringify(row[name]);
  });
  return { token: `${signature(sorted)}\u0001${values.join('\u0002')}`, canonical };
}

function signature(columns: string[]): string {
  return [...columns].sort().join('\u0000');
}

/** The one text a value of this type has, where equal values always give equal texts; null when unknown. */
export function canonicalValue(column: TargetColumn, value: JsonValue | undefined): string | null {
  if (value === null || value === undefined || column.isArray || typeof value === 'object') return null;
  const text = String(value);
  switch (column.baseType) {
    case 'int2':
    case 'int4':
    case 'int8':
      return /^\s*[+-]?\d+\s*$/.test(text) ? BigInt(text.trim()).toString() : null;
    case 'text':
    case 'varchar':
      return text;
    case 'uuid':
      return text.toLowerCase().replace(/[{}-]/g, '');
    default:
      return column.enumLabels ? text : null;
  }
}

function columnsOf(op: ClaimedOperation): string[] {
  return Object.keys(op.values ?? {}).sort();
}

function keyColumnsOf(table: TargetTable, op: ClaimedOperation): string[] | null {
  if (op.type === 'insert') return null;
  if (op.type === 'upsert') return op.conflictKey ?? table.primaryKey;
  return Object.keys(op.key ?? {}).sort();
}
