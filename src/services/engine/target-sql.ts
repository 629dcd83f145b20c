import type { ClaimedOperation, StatementPlan } from '../../interfaces/chunk.interfaces';
import type { TargetColumn, TargetTable } from '../../interfaces/catalog.interfaces';
import { quoteIdent, quoteLiteral } from '../storage/database';
import { idRuns, paramsOfRuns, taggedSpans } from '../storage/id-runs';

/**
 * The SQL that applies a statement plan to a target table. The values never travel through the service: each
 * statement reads them from the operations' stored JSON (`batch.operations.row_values`, `row_key`), by the
 * operations' ids, its one parameter. Values are cast to the column's type without its modifier; the assignment
 * then applies length and precision exactly as a one-row statement would. Identifiers come only from the catalog.
 *
 * A statement either affects one row per operation when it succeeds (`everyRow`), or returns one row, `ops`: NULL when
 * every operation affected a row (the usual case, told without a row per operation), else the id of each operation
 * whose row it affected (affectedOperations).
 */
export interface TargetStatement {
  sql: string;
  /** The runs of the operations' ids (id-runs.ts): their first and their last ids. */
  params: [string, string];
  everyRow: boolean;
}

/**
 * `bareFirst`: an update, increment or delete runs its change alone first (castingEveryRow); false runs at once the
 * form that tells which operations changed a row, as where its kind's last statement on the table missed rows.
 */
export function targetStatement(plan: StatementPlan, bareFirst = true): TargetStatement {
  const { table } = plan;
  switch (plan.type) {
    case 'insert':
      return insertStatement(table, plan);
    case 'upsert':
      return upsertStatement(table, plan);
    case 'update':
      return updateStatement(table, plan, bareFirst, (c, v) => `${quoteIdent(c.name)} = ${v}`);
    case 'increment':
      return updateStatement(
        table,
        plan,
        bareFirst,
        (c, v) => `${quoteIdent(c.name)} = t.${quoteIdent(c.name)} + ${v}`,
      );
    case 'delete':
      return deleteStatement(table, plan, bareFirst);
  }
}

export function qualifiedName(table: TargetTable): string {
  return `${quoteIdent(table.schema)}.${quoteIdent(table.table)}`;
}

/**
 * The operations as typed rows, found through the primary key by runs of consecutive ids: `SELECT
 * (o.row_values->>'c')::type AS c1, …, o.id AS op, o.priority FROM unnest($1, $2) r JOIN batch.operations o ON o.id
 * BETWEEN r.first_id AND r.last_id`, a range of the index per run where a lookup per id read ~3 times the buffers. A
 * statement's operations are in the order of application of their chunk, `priority DESC, id` (`order`). Every
 * value is cast for every operation, also where an update or delete then matches no row, as a one-row statement with
 * a bad value would fail even when its WHERE matches nothing.
 *
 * `inOrder` (a statement that takes its rows in order): operations that are one run (oneRun) are read as one range of
 * the primary key, from the first id given to the last: no sort, about a seventh of an insert's time. What is given
 * may also be each id of a part of that run (batch.apply_in_parts): a part of a run is a run too.
 */
function input(
  table: TargetTable,
  plan: StatementPlan,
  fields: { name: string; from: 'values' | 'key' }[],
  inOrder = false,
) {
  const columns = fields.map((f) => column(table, f.name));
  const aliases = fields.map((_, i) => `c${i + 1}`);
  const runs = idRuns(plan.operations);
  const run = inOrder ? oneRun(plan.operations, runs) : null;
  const operations = plan.source ?? 'batch.operations';
  const sql =
    `SELECT ${columns.map((c, i) => `${storedValue(c, fields[i].from, plan.helpers)} AS ${aliases[i]}`).join(', ')}, o.id AS op, o.priority ` +
    (run
      ? `FROM ${operations} o WHERE o.id BETWEEN ($1::bigint[])[1] AND ($2::bigint[])[cardinality($2::bigint[])]`
      : `FROM unnest($1::bigint[], $2::bigint[]) AS r(first_id, last_id) JOIN ${operations} o ON o.id BETWEEN r.first_id AND r.last_id`);
  return { columns, params: paramsOfRuns(runs), sql, aliases, order: run ? 'v.op' : PLAN_ORDER };
}

/**
 * The one run of ids (its first and last) that operations of one priority are, as a backlog's statements are; else
 * null (`runs`: their idRuns, where already known). Read as one range of the primary key, they come in order of id,
 * which is then their order of application.
 */
export function oneRun(operations: ClaimedOperation[], runs = idRuns(operations)): [string, string] | null {
  return runs.length === 1 && operations.every((op) => op.priority === operations[0].priority) ? runs[0] : null;
}

/** The order of a statement's operations: their chunk's order of application. */
const PLAN_ORDER = 'v.priority DESC, v.op';

/**
 * A column's value read from an operation's stored JSON and cast to the column's type: JSON text for JSON columns
 * (JSON null is SQL NULL), a PostgreSQL array literal for arrays (batch.array_literal), else the value's text.
 */
function storedValue(column: TargetColumn, from: 'values' | 'key', helpers = 'batch'): string {
  const source = `o.${from === 'values' ? 'row_values' : 'row_key'}`;
  const name = quoteLiteral(column.name);
  const json = column.baseType === 'json' || column.baseType === 'jsonb';
  if (column.isArray) return `${helpers}.array_literal(${source}->${name}, ${json})::${column.castType}`;
  if (json) return `nullif(${source}->${name}, 'null')::${column.castType}`;
  return `(${source}->>${name})::${column.castType}`;
}

/** `INSERT … SELECT … ORDER BY` plan order: rows go in, and defaults are drawn, in that order. */
export function insertStatement(table: TargetTable, plan: StatementPlan): TargetStatement {
  const rows = input(
    table,
    plan,
    plan.columns.map((name) => ({ name, from: 'values' as const })),
    true,
  );
  const sql =
    `INSERT INTO ${qualifiedName(table)} (${rows.columns.map((c) => quoteIdent(c.name)).join(', ')}) ` +
    `SELECT ${rows.aliases.map((a) => `v.${a}`).join(', ')} FROM (${rows.sql}) v ORDER BY ${rows.order}`;
  return { sql, params: rows.params, everyRow: true };
}

/**
 * The insert of one run of `count` operations (their first and last ids) from their target's stage, where their
 * values were written typed at ingest (typed-inserts.sql), in order of id: no JSON read, no cast. Inserts no row for an
 * operation without one there, which its caller checks. Where a column left out takes a default, it inserts nothing
 * unless the stage has a row for each (counted first, a one-time filter): a short stage would otherwise draw values of
 * serial and identity columns for rows that the statement from the JSON draws again.
 */
export function typedInsertStatement(
  table: TargetTable,
  columns: string[],
  stage: string,
  run: [string, string],
  count: number,
): { sql: string; params: (string | number)[] } {
  const names = columns.map(quoteIdent).join(', ');
  const rows = `FROM ${stage} WHERE operation_id BETWEEN $1 AND $2`;
  const drawsDefaults = [...table.columns.values()].some((c) => c.hasDefault && !columns.includes(c.name));
  const sql =
    `INSERT INTO ${qualifiedName(table)} (${names}) SELECT ${names} ${rows} ` +
    (drawsDefaults ? `AND (SELECT count(*) ${rows}) = $3 ` : '') +
    'ORDER BY operation_id';
  return { sql, params: drawsDefaults ? [...run, count] : run };
}

/**
 * `INSERT … ON CONFLICT (key) DO UPDATE SET` every other given column. With nothing else to set, `DO NOTHING`,
 * and the rows actually inserted are matched back to their operations by the conflict key.
 */
export function upsertStatement(table: TargetTable, plan: StatementPlan): TargetStatement {
  const conflictKey = plan.keyColumns!;
  const updates = plan.columns
    .filter((name) => !conflictKey.includes(name))
    .map((name) => `${quoteIdent(name)} = EXCLUDED.${quoteIdent(name)}`);
  const rows = input(
    table,
    plan,
    plan.columns.map((name) => ({ name, from: 'values' as const })),
    updates.length > 0,
  );
  const names = rows.columns.map((c) => quoteIdent(c.name)).join(', ');
  const selected = rows.aliases.map((a) => `v.${a}`).join(', ');
  const conflict = conflictKey.map(quoteIdent).join(', ');
  if (updates.length > 0) {
    const sql =
      `INSERT INTO ${qualifiedName(table)} (${names}) SELECT ${selected} FROM (${rows.sql}) v ORDER BY ${rows.order} ` +
      `ON CONFLICT (${conflict}) DO UPDATE SET ${updates.join(', ')}`;
    return { sql, params: rows.params, everyRow: true };
  }
  // Rows inserted are matched back by their key, cast to the column's full type as the assignment stored it;
  // where two operations give the same key, the first inserted the row and the second found it.
  const keys = conflictKey.map(quoteIdent);
  const match = conflictKey.map(
    (name, k) =>
      `ins.${keys[k]} = v.${rows.aliases[plan.columns.indexOf(name)]}::${rows.columns[plan.columns.indexOf(name)].sqlType}`,
  );
  const sql =
    `WITH v AS MATERIALIZED (${rows.sql}), ` +
    `ins AS (INSERT INTO ${qualifiedName(table)} (${names}) SELECT ${selected} FROM v ORDER BY ${PLAN_ORDER} ` +
    `ON CONFLICT (${conflict}) DO NOTHING RETURNING ${keys.join(', ')}), ` +
    `changed AS (SELECT (array_agg(v.op ORDER BY ${PLAN_ORDER}))[1] AS op FROM v JOIN ins ON ${match.join(' AND ')} ` +
    `GROUP BY ${keys.map((k) => `ins.${k}`).join(', ')}) ${AFFECTED_OPERATIONS}`;
  return { sql, params: rows.params, everyRow: false };
}

/** `UPDATE … FROM (typed rows) WHERE key matches`: keys are distinct within a plan, so each row is hit at most once. */
function updateStatement(
  table: TargetTable,
  plan: StatementPlan,
  bareFirst: boolean,
  assign: (column: TargetColumn, value: string) => string,
): TargetStatement {
  const keyColumns = plan.keyColumns!;
  const fields = [
    ...plan.columns.map((name) => ({ name, from: 'values' as const })),
    ...keyColumns.map((name) => ({ name, from: 'key' as const })),
  ];
  const rows = input(table, plan, fields);
  const sets = plan.columns.map((_, i) => assign(rows.columns[i], `v.${rows.aliases[i]}`));
  const match = keyColumns.map((name, k) => `t.${quoteIdent(name)} = v.${rows.aliases[plan.columns.length + k]}`);
  const sql = castingEveryRow(
    plan,
    rows.sql,
    (v) => `UPDATE ${qualifiedName(table)} AS t SET ${sets.join(', ')} FROM ${v} WHERE ${match.join(' AND ')}`,
    bareFirst,
  );
  return { sql, params: rows.params, everyRow: false };
}

/**
 * Rounds of updates and increments (foldRounds), one after another, as one `UPDATE`: each row found once, its new value
 * of each column the chain of the rounds' changes to it in order, every step evaluated as its own statement would: an
 * increment adds and is cast to the column's type (rounding, range and domain checked at each step, adding -0 where the
 * row has none: x + -0 = x), an update picks its value through an array (built whole, unlike a lazy CASE, so that no
 * step goes unevaluated). Every value is cast as the rounds' own statements would (input()), and a chain's update value
 * to the column's full type. Its parameters: ranges of ids holding the rounds' operations and the round (1…) of each
 * id they hold, 0 where it is of none (taggedSpans): in a mixed stream the rounds' ids are a few apart. It returns
 * `folded`, false where it refused (an update setting a NOT NULL column to NULL, as a column altered since its operation
 * was created may be: batch.apply_folded then undoes it, and the rounds run as they are); and `missed`, NULL when it
 * changed a row for every key, else the operations whose key found no row (each affected none: no step of a fold
 * inserts or deletes a row).
 */
export function foldedStatement(plans: StatementPlan[]): { sql: string; params: [string, string, string] } {
  const { table } = plans[0];
  const keys = plans[0].keyColumns!.map((name) => column(table, name));
  const { helpers, source } = plans[0];
  const selected = keys.map((c, k) => `${storedValue(c, 'key', helpers)} AS k${k + 1}`);
  const refusals: string[] = [];
  const chains = new Map<string, string>();
  plans.forEach((plan, j) => {
    const round = `o.round = ${j + 1}`;
    selected.push(`bool_or(${round}) AS p${j + 1}`);
    plan.columns.forEach((name, i) => {
      const c = column(table, name);
      const cast = storedValue(c, 'values', helpers);
      const value = plan.type === 'update' && c.typmod >= 0 ? `${cast}::${c.sqlType}` : cast;
      const alias = `p${j + 1}v${i + 1}`;
      selected.push(`(array_agg(${value}) FILTER (WHERE ${round}))[1] AS ${alias}`);
      if (plan.type === 'update' && c.notNull) refusals.push(`(${round} AND ${value} IS NULL)`);
      const before = chains.get(name) ?? `t.${quoteIdent(name)}`;
      chains.set(
        name,
        plan.type === 'update'
          ? `(ARRAY[${before}, g.${alias}])[CASE WHEN g.p${j + 1} THEN 2 ELSE 1 END]`
          : `(${before} + coalesce(g.${alias}, '-0'))::${c.sqlType}`,
      );
    });
  });
  selected.push(`${refusals.length ? `coalesce(bool_or(${refusals.join(' OR ')}), false)` : 'false'} AS refused`);
  selected.push('array_agg(o.id) AS ops');
  const ranges =
    `SELECT s.first_id, s.last_id, sum(s.last_id - s.first_id + 1) OVER (ORDER BY s.k)::bigint - s.last_id AS base ` +
    `FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS s(first_id, last_id, k)`;
  const operations =
    `SELECT op.id, op.row_key, op.row_values, ($3::int[])[(s.base + op.id)::int] AS round FROM (${ranges}) s ` +
    `JOIN ${source ?? 'batch.operations'} op ON op.id BETWEEN s.first_id AND s.last_id OFFSET 0`; // each id's round looked up once, not per use
  const rows =
    `SELECT ${selected.join(', ')} FROM (${operations}) o WHERE o.round > 0 ` +
    `GROUP BY ${keys.map((_, k) => k + 1).join(', ')}`;
  const sets = [...chains].map(([name, chain]) => `${quoteIdent(name)} = ${chain}`);
  const match = keys.map((c, k) => `t.${quoteIdent(c.name)} = g.k${k + 1}`);
  const sql =
    `WITH g AS MATERIALIZED (${rows}), changed AS (UPDATE ${qualifiedName(table)} AS t SET ${sets.join(', ')} ` +
    `FROM g WHERE ${match.join(' AND ')} AND NOT g.refused RETURNING g.ops) ` +
    `SELECT NOT EXISTS (SELECT FROM g WHERE g.refused) AS folded, ` +
    `CASE WHEN (SELECT count(*) FROM changed) < (SELECT count(*) FROM g) ` +
    `THEN ARRAY(SELECT unnest(g.ops) FROM g EXCEPT ALL SELECT unnest(c.ops) FROM changed c) END AS missed`;
  return { sql, params: taggedSpans(plans.map((plan, j) => ({ spans: plan.operations, tag: j + 1 }))) };
}

/** `DELETE … USING (typed rows) WHERE key matches`. */
export function deleteStatement(table: TargetTable, plan: StatementPlan, bareFirst = true): TargetStatement {
  const keyColumns = plan.keyColumns!;
  const rows = input(
    table,
    plan,
    keyColumns.map((name) => ({ name, from: 'key' as const })),
  );
  const match = keyColumns.map((name, k) => `t.${quoteIdent(name)} = v.${rows.aliases[k]}`);
  const sql = castingEveryRow(
    plan,
    rows.sql,
    (v) => `DELETE FROM ${qualifiedName(table)} AS t USING ${v} WHERE ${match.join(' AND ')}`,
    bareFirst,
  );
  return { sql, params: rows.params, everyRow: false };
}

/**
 * The one row of a statement that tells which operations affected a row, from `changed` (an operation's id per row it
 * affected, at most one each) and `v` (the statement's typed rows): `ops` NULL when all of them did, else those ids.
 * Counting `v` also casts every value of it (castingEveryRow).
 */
const AFFECTED_OPERATIONS =
  `SELECT CASE WHEN count(*) = (SELECT count(*) FROM v) THEN NULL ELSE coalesce(array_agg(op), '{}') END AS ops ` +
  `FROM changed`;

/**
 * An UPDATE or DELETE `… FROM v` (the typed rows) reads them only as far as its join needs: where nothing can match (an
 * empty table read first by a hash join, say) it reads none, and a value that cannot be cast fails nothing. A one-row
 * statement casts its values whether or not its WHERE matches a row; so the statement also counts the typed rows,
 * casting every value, and tells the operations whose row it changed (AFFECTED_OPERATIONS). It runs through
 * batch.through_key_index, which finds each row by one lookup of the key's index, and which runs the change alone
 * first (unless not `bareFirst`): where it changes a row per operation, as nearly always, that says all (see there).
 */
function castingEveryRow(plan: StatementPlan, rows: string, change: (v: string) => string, bareFirst: boolean): string {
  const exact = `WITH v AS MATERIALIZED (${rows}), changed AS (${change('v')} RETURNING v.op) ${AFFECTED_OPERATIONS}`;
  const bare = bareFirst ? quoteLiteral(change(`(${rows}) v`)) : 'NULL';
  return `SELECT ${plan.helpers ?? 'batch'}.through_key_index(${bare}, ${quoteLiteral(exact)}, $1, $2) AS ops`;
}

function column(table: TargetTable, name: string): TargetColumn {
  const found = table.columns.get(name);
  // A column dropped since the operation was created: let the database name the error.
  return (
    found ?? {
      name,
      sqlType: 'text',
      castType: 'text',
      baseType: 'text',
      isArray: false,
      typmod: -1,
      notNull: false,
      hasDefault: false,
      generatedAlways: false,
      enumLabels: null,
    }
  );
}
