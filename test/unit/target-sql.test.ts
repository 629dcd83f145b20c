import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClaimedOperation, StatementPlan } from '../../src/interfaces/chunk.interfaces';
import type { OperationType } from '../../src/interfaces/operation.interfaces';
import type { TargetColumn, TargetTable } from '../../src/interfaces/catalog.interfaces';
import {
  deleteStatement,
  foldedStatement,
  insertStatement,
  oneRun,
  qualifiedName,
  targetStatement,
  typedInsertStatement,
  upsertStatement,
} from '../../src/services/engine/target-sql';
import { typedRows, valueRows } from '../../src/services/engine/other-database';
import { missedOutcomes, StatementApplier } from '../../src/services/engine/statement-applier.service';
import { column, targetTable } from '../support/catalog-fixtures';
import { claimedId } from '../support/claimed';

function col(name: string, baseType: string, castType: string, options: Partial<TargetColumn> = {}): TargetColumn {
  return column(name, baseType, { sqlType: castType, castType, ...options });
}

function table(schema: string, name: string, columns: TargetColumn[]): TargetTable {
  return targetTable(`${schema}.${name}`, columns, { primaryKey: ['id'], uniqueKeys: [['id']] });
}

/** The writer reads only the operations' ids: their values are read from the database. */
function op(id: string): ClaimedOperation {
  return claimedId(id);
}

function plan(
  target: TargetTable,
  type: OperationType,
  columns: string[],
  keyColumns: string[] | null,
  ids: string[] = ['1'],
): StatementPlan {
  return { table: target, type, columns, keyColumns, operations: ids.map(op) };
}

const items = table('public', 'items', [
  col('id', 'int4', 'integer'),
  col('price', 'numeric', 'numeric', { sqlType: 'numeric(10,2)', typmod: ((10 << 16) | 2) + 4 }),
  col('sku', 'varchar', 'character varying', { sqlType: 'character varying(10)', typmod: 14 }),
  col('qty', 'int4', 'integer'),
  col('note', 'text', 'text'),
  col('tags', 'text', 'text[]', { isArray: true }),
  col('doc', 'jsonb', 'jsonb'),
  col('docs', 'jsonb', 'jsonb[]', { isArray: true }),
  col('flag', 'bool', 'boolean'),
  col('tenant', 'int4', 'integer'),
  col('code', 'text', 'text'),
]);

/** The typed rows every statement reads: its columns from the stored JSON, found by runs of the operations' ids. */
/** How a statement tells which operations affected a row: NULL when all did, else their ids; it counts (casts) every typed row. */
const AFFECTED =
  "SELECT CASE WHEN count(*) = (SELECT count(*) FROM v) THEN NULL ELSE coalesce(array_agg(op), '{}') END AS ops FROM changed";
/** How an update or delete ends. */
const CASTING_EVERY_ROW = ` RETURNING v.op) ${AFFECTED}`;
/**
 * An update or delete runs through batch.through_key_index, given twice as literals: the change alone over the typed
 * rows, and the statement that tells which operations changed a row.
 */
const throughKeyIndex = (change: string, exact: string) =>
  `SELECT batch.through_key_index(${[change, exact].map((text) => `E'${text.replace(/'/g, "''")}'`).join(', ')}, $1, $2) AS ops`;

const FROM_OPERATIONS =
  'o.id AS op, o.priority FROM unnest($1::bigint[], $2::bigint[]) AS r(first_id, last_id) JOIN batch.operations o ON o.id BETWEEN r.first_id AND r.last_id';
/** How an insert reads one run of one priority: one range of the primary key, in order of id. */
const FROM_ONE_RUN =
  'o.id AS op, o.priority FROM batch.operations o WHERE o.id BETWEEN ($1::bigint[])[1] AND ($2::bigint[])[cardinality($2::bigint[])]';

describe('qualifiedName', () => {
  it('quotes schema and table, doubling embedded double quotes', () => {
    assert.equal(qualifiedName(items), '"public"."items"');
    assert.equal(qualifiedName(table('Sales "EU"', 'or"ders', [])), '"Sales ""EU"""."or""ders"');
  });
});

describe('typedInsertStatement', () => {
  it("inserts one run from its target's stage, its columns as they are there, in order of id", () => {
    const { sql, params } = typedInsertStatement(items, ['id', 'sku'], 'batch.typed_rows_1', ['7', '9'], 3);
    assert.equal(
      sql,
      'INSERT INTO "public"."items" ("id", "sku") SELECT "id", "sku" FROM batch.typed_rows_1 ' +
        'WHERE operation_id BETWEEN $1 AND $2 ORDER BY operation_id',
    );
    assert.deepEqual(params, ['7', '9']);
  });

  it('inserts nothing unless every row is there, where a column left out draws a default', () => {
    const drawn = table('public', 'drawn', [
      col('id', 'int4', 'integer'),
      col('seq', 'int8', 'bigint', { hasDefault: true }),
    ]);
    const { sql, params } = typedInsertStatement(drawn, ['id'], 'batch.typed_rows_2', ['7', '9'], 3);
    assert.equal(
      sql,
      'INSERT INTO "public"."drawn" ("id") SELECT "id" FROM batch.typed_rows_2 WHERE operation_id BETWEEN $1 AND $2 ' +
        'AND (SELECT count(*) FROM batch.typed_rows_2 WHERE operation_id BETWEEN $1 AND $2) = $3 ORDER BY operation_id',
    );
    assert.deepEqual(params, ['7', '9', 3]);
    assert.doesNotMatch(typedInsertStatement(drawn, ['id', 'seq'], 'batch.typed_rows_2', ['7', '9'], 3).sql, /count/);
  });
});

describe('insertStatement', () => {
  it('builds INSERT … SELECT of the values stored with the operations, in plan order, cast with castType', () => {
    const statement = insertStatement(items, plan(items, 'insert', ['id', 'price', 'sku'], null));
    assert.equal(
      statement.sql,
      'INSERT INTO "public"."items" ("id", "price", "sku") SELECT v.c1, v.c2, v.c3 FROM (' +
        "SELECT (o.row_values->>E'id')::integer AS c1, (o.row_values->>E'price')::numeric AS c2, (o.row_values->>E'sku')::character varying AS c3, " +
        `${FROM_ONE_RUN}) v ORDER BY v.op`,
    );
    assert.equal(statement.everyRow, true);
  });

  it('reads runs, or operations of several priorities, by ranges, and then orders them by priority and id', () => {
    const oneRun = (ids: string[], priorities: number[]) => ({
      ...plan(items, 'insert', ['id'], null, ids),
      operations: ids.map((id, i) => ({ ...op(id), priority: priorities[i] })),
    });
    for (const p of [oneRun(['1', '3'], [0, 0]), oneRun(['2', '1'], [0, 5])]) {
      const { sql } = insertStatement(items, p);
      assert.ok(sql.endsWith(`${FROM_OPERATIONS}) v ORDER BY v.priority DESC, v.op`), sql);
    }
    const { sql, params } = insertStatement(items, oneRun(['2', '1', '3'], [5, 5, 5]));
    assert.ok(sql.endsWith(`${FROM_ONE_RUN}) v ORDER BY v.op`), sql);
    assert.deepEqual(params, ['{1}', '{3}']);
  });

  it('does not cast to the type modifier (the assignment applies length and precision)', () => {
    const { sql } = insertStatement(items, plan(items, 'insert', ['price', 'sku'], null));
    assert.doesNotMatch(sql, /numeric\(10,2\)|varying\(10\)/);
  });

  it("binds the runs of the operations' ids as its two parameters whatever the number of rows", () => {
    const ids = [...Array.from({ length: 5000 }, (_, i) => String(i + 1)), '7000', '6999'];
    const { sql, params } = insertStatement(items, plan(items, 'insert', ['id', 'sku'], null, ids));
    assert.deepEqual(params, ['{1,6999}', '{5000,7000}']);
    assert.deepEqual(sql.match(/\$\d+/g), ['$1', '$2']);
  });

  it('reads JSON columns as JSON (JSON null as NULL) and arrays as array literals', () => {
    const { sql } = insertStatement(items, plan(items, 'insert', ['doc', 'docs', 'tags'], null));
    assert.match(sql, /SELECT nullif\(o\.row_values->E'doc', 'null'\)::jsonb AS c1, /);
    assert.match(sql, /batch\.array_literal\(o\.row_values->E'docs', true\)::jsonb\[\] AS c2, /);
    assert.match(sql, /batch\.array_literal\(o\.row_values->E'tags', false\)::text\[\] AS c3, /);
  });

  it('quotes table and column names that contain quotes or backslashes', () => {
    const odd = table('my schema', 'we"ird', [col('a"b', 'text', 'text'), col("it's\\", 'int4', 'integer')]);
    const { sql } = insertStatement(odd, plan(odd, 'insert', ['a"b', "it's\\"], null));
    assert.equal(
      sql,
      'INSERT INTO "my schema"."we""ird" ("a""b", "it\'s\\") SELECT v.c1, v.c2 FROM (' +
        "SELECT (o.row_values->>E'a\"b')::text AS c1, (o.row_values->>E'it''s\\\\')::integer AS c2, " +
        `${FROM_ONE_RUN}) v ORDER BY v.op`,
    );
  });

  it('uses quoted user-defined cast types as the catalog spells them', () => {
    const withEnum = table('public', 'moods', [col('m', 'mood', '"Mood"', { enumLabels: ['ok'] })]);
    const { sql } = insertStatement(withEnum, plan(withEnum, 'insert', ['m'], null));
    assert.match(sql, /SELECT \(o\.row_values->>E'm'\)::"Mood" AS c1, o\.id AS op, o\.priority FROM/);
  });

  it('casts a column missing from the catalog as text, leaving the error to the database', () => {
    const { sql } = insertStatement(items, plan(items, 'insert', ['gone'], null));
    assert.match(
      sql,
      /^INSERT INTO "public"\."items" \("gone"\) SELECT v\.c1 FROM \(SELECT \(o\.row_values->>E'gone'\)::text AS c1, o\.id AS op/,
    );
  });
});

describe('oneRun: operations read in order of id, without a sort', () => {
  const ofPriorities = (ids: string[], priorities: number[]) =>
    ids.map((id, i) => ({ ...op(id), priority: priorities[i] }));

  it('is the one run that operations of one priority are, in any order given, else null', () => {
    assert.deepEqual(oneRun(ofPriorities(['2', '1', '3'], [5, 5, 5])), ['1', '3']);
    assert.deepEqual(oneRun([{ ...op('10'), count: 1000 }]), ['10', '1009']);
    assert.equal(oneRun(ofPriorities(['1', '3'], [0, 0])), null, 'two runs');
    assert.equal(oneRun(ofPriorities(['1', '2'], [0, 5])), null, 'two priorities');
  });

  it("copies one run's values into another database by one range in order of id, others by runs, sorted", () => {
    const values = ["o.row_values->>E'id'"];
    const copied = (ids: string[], priorities: number[]) =>
      valueRows({ ...plan(items, 'insert', ['id'], null), operations: ofPriorities(ids, priorities) }, values);
    assert.equal(
      copied(['1', '2', '3'], [0, 0, 0]),
      "SELECT o.row_values->>E'id' FROM batch.operations o WHERE o.id BETWEEN 1 AND 3 ORDER BY o.id",
    );
    assert.equal(
      copied(['1', '3'], [0, 0]),
      "SELECT o.row_values->>E'id' FROM unnest('{1,3}'::bigint[], '{1,3}'::bigint[]) AS r(first_id, last_id) " +
        'JOIN batch.operations o ON o.id BETWEEN r.first_id AND r.last_id ORDER BY o.priority DESC, o.id',
    );
  });

  it("copies one run's typed rows into another database, each of them or none", () => {
    const run = {
      ...plan(items, 'insert', ['id', 'note'], null),
      operations: ofPriorities(['4', '5', '6'], [0, 0, 0]),
    };
    assert.equal(
      typedRows(run, 'batch.typed_rows_1'),
      'SELECT "id", "note" FROM batch.typed_rows_1 WHERE operation_id BETWEEN 4 AND 6 ' +
        'AND (SELECT count(*) FROM batch.typed_rows_1 WHERE operation_id BETWEEN 4 AND 6) = 3 ORDER BY operation_id',
    );
  });
});

describe('upsertStatement', () => {
  it('sets every given non-key column ON CONFLICT, one row affected per operation', () => {
    const statement = upsertStatement(items, plan(items, 'upsert', ['id', 'note', 'qty'], ['id']));
    assert.equal(
      statement.sql,
      'INSERT INTO "public"."items" ("id", "note", "qty") SELECT v.c1, v.c2, v.c3 FROM (' +
        "SELECT (o.row_values->>E'id')::integer AS c1, (o.row_values->>E'note')::text AS c2, (o.row_values->>E'qty')::integer AS c3, " +
        `${FROM_ONE_RUN}) v ORDER BY v.op ON CONFLICT ("id") DO UPDATE SET "note" = EXCLUDED."note", "qty" = EXCLUDED."qty"`,
    );
    assert.equal(statement.everyRow, true);
  });

  it('with only key columns, does nothing on conflict and returns the ord of each row inserted', () => {
    const statement = upsertStatement(items, plan(items, 'upsert', ['code', 'tenant'], ['tenant', 'code']));
    assert.equal(
      statement.sql,
      "WITH v AS MATERIALIZED (SELECT (o.row_values->>E'code')::text AS c1, (o.row_values->>E'tenant')::integer AS c2, " +
        `${FROM_OPERATIONS}), ` +
        'ins AS (INSERT INTO "public"."items" ("code", "tenant") SELECT v.c1, v.c2 FROM v ORDER BY v.priority DESC, v.op ' +
        'ON CONFLICT ("tenant", "code") DO NOTHING RETURNING "tenant", "code"), ' +
        'changed AS (SELECT (array_agg(v.op ORDER BY v.priority DESC, v.op))[1] AS op FROM v JOIN ins ON ins."tenant" = v.c2::integer AND ins."code" = v.c1::text ' +
        `GROUP BY ins."tenant", ins."code") ${AFFECTED}`,
    );
    assert.equal(statement.everyRow, false);
  });

  it('is what targetStatement builds for an upsert plan', () => {
    const p = plan(items, 'upsert', ['id', 'qty'], ['id']);
    assert.deepEqual(targetStatement(p), upsertStatement(items, p));
  });
});

describe('targetStatement: update and increment', () => {
  it('update: UPDATE … AS t SET … FROM the typed rows WHERE the key (read from the stored key) matches; again casting every row', () => {
    const statement = targetStatement(plan(items, 'update', ['note', 'qty'], ['id'], ['1', '2']));
    const rows =
      "SELECT (o.row_values->>E'note')::text AS c1, (o.row_values->>E'qty')::integer AS c2, (o.row_key->>E'id')::integer AS c3, " +
      FROM_OPERATIONS;
    assert.equal(
      statement.sql,
      throughKeyIndex(
        `UPDATE "public"."items" AS t SET "note" = v.c1, "qty" = v.c2 FROM (${rows}) v WHERE t."id" = v.c3`,
        `WITH v AS MATERIALIZED (${rows}), changed AS (` +
          `UPDATE "public"."items" AS t SET "note" = v.c1, "qty" = v.c2 FROM v WHERE t."id" = v.c3${CASTING_EVERY_ROW}`,
      ),
    );
    assert.equal(statement.everyRow, false);
    assert.deepEqual(statement.params, ['{1}', '{2}']);
  });

  it('update by a composite key matches every key column', () => {
    const statement = targetStatement(plan(items, 'update', ['qty'], ['code', 'tenant']));
    assert.ok(
      statement.sql.includes(` WHERE t."code" = v.c2 AND t."tenant" = v.c3${CASTING_EVERY_ROW.replace(/'/g, "''")}'`),
    );
  });

  it('increment adds each delta to the current value', () => {
    const statement = targetStatement(plan(items, 'increment', ['price', 'qty'], ['id']));
    const rows =
      "SELECT (o.row_values->>E'price')::numeric AS c1, (o.row_values->>E'qty')::integer AS c2, (o.row_key->>E'id')::integer AS c3, " +
      FROM_OPERATIONS;
    const update = `UPDATE "public"."items" AS t SET "price" = t."price" + v.c1, "qty" = t."qty" + v.c2`;
    assert.equal(
      statement.sql,
      throughKeyIndex(
        `${update} FROM (${rows}) v WHERE t."id" = v.c3`,
        `WITH v AS MATERIALIZED (${rows}), changed AS (${update} FROM v WHERE t."id" = v.c3${CASTING_EVERY_ROW}`,
      ),
    );
  });

  it('quotes odd column names in SET and WHERE', () => {
    const odd = table('s', 't', [col('id', 'int4', 'integer'), col('we"ird', 'int4', 'integer')]);
    const statement = targetStatement(plan(odd, 'increment', ['we"ird'], ['id']));
    assert.match(
      statement.sql,
      /UPDATE "s"\."t" AS t SET "we""ird" = t\."we""ird" \+ v\.c1 FROM v WHERE t\."id" = v\.c2/,
    );
  });
});

describe('deleteStatement', () => {
  it('DELETE … USING the typed rows WHERE the key matches; again casting every row', () => {
    const p = plan(items, 'delete', [], ['id'], ['1', '2']);
    const statement = deleteStatement(items, p);
    const rows = `SELECT (o.row_key->>E'id')::integer AS c1, ${FROM_OPERATIONS}`;
    assert.equal(
      statement.sql,
      throughKeyIndex(
        `DELETE FROM "public"."items" AS t USING (${rows}) v WHERE t."id" = v.c1`,
        `WITH v AS MATERIALIZED (${rows}), changed AS (` +
          `DELETE FROM "public"."items" AS t USING v WHERE t."id" = v.c1${CASTING_EVERY_ROW}`,
      ),
    );
    assert.equal(statement.everyRow, false);
    assert.deepEqual(statement.params, ['{1}', '{2}']);
    assert.deepEqual(targetStatement(p), statement);
  });
});

describe('keyed statements after one that missed rows', () => {
  it('not bareFirst: the form that tells which operations changed a row, at once', () => {
    const p = plan(items, 'delete', [], ['id'], ['1', '2']);
    const bare = deleteStatement(items, p);
    const exact = targetStatement(p, false);
    assert.match(exact.sql, /^SELECT batch\.through_key_index\(NULL, E'WITH v AS MATERIALIZED/);
    assert.equal(exact.sql.replace('(NULL, ', '('), bare.sql.replace(/\(E'DELETE .*?', E'WITH/, "(E'WITH"));
    assert.match(targetStatement(plan(items, 'update', ['qty'], ['id']), false).sql, /through_key_index\(NULL, /);
    assert.match(targetStatement(plan(items, 'increment', ['qty'], ['id']), false).sql, /through_key_index\(NULL, /);
  });

  it('the applier runs a kind at once in that form on a table where its last statement missed, until one misses none', async () => {
    const sent: string[] = [];
    const answers: (string[] | null)[] = [['1'], null, null, ['2'], null];
    const tx = {
      query: (sql: string) => {
        sent.push(sql);
        return Promise.resolve({ rows: sql.includes('through_key_index') ? [{ ops: answers.shift() }] : [] });
      },
    };
    const applier = new StatementApplier();
    const deletes = plan(items, 'delete', [], ['id'], ['1', '2']);
    const updates = plan(items, 'update', ['qty'], ['id'], ['1', '2']);
    const never = () => false;
    const outcomes = [];
    for (const p of [deletes, updates, deletes, deletes, deletes])
      outcomes.push((await applier.applyOrSettle(tx as never, p, never)).outcomes.map((o) => o.rowsAffected));
    const bareFirst = sent.filter((sql) => sql.includes('through_key_index')).map((sql) => !sql.includes('(NULL, '));
    // a delete missed: the update still bare, the next delete at once exact; it missed none: bare again, and so on
    assert.deepEqual(bareFirst, [true, true, false, true, false]);
    assert.deepEqual(outcomes, [
      [1, 0],
      [1, 1],
      [1, 1],
      [0, 1],
      [1, 1],
    ]);
  });
});

describe('the outcomes of a statement that missed rows', () => {
  it('keeps a run or a round whole, listing the operations that found no row; takes apart one that met two', () => {
    const affected = new Map([
      ['11', 0],
      ['13', 0],
      ['20', 0],
      ['31', 2],
    ]);
    const outcomes = missedOutcomes(
      [
        claimedId('10', { count: 4 }),
        claimedId('20', { count: 2, ids: ['20', '22'] }),
        claimedId('25'),
        claimedId('30', { count: 2 }),
        claimedId('13'),
      ],
      (id) => affected.get(id) ?? 1,
    );
    assert.deepEqual(
      outcomes.map(({ operation: { id, count }, rowsAffected, missed }) => [id, count, rowsAffected, missed]),
      [
        ['10', 4, 1, ['11', '13']],
        ['20', 2, 1, ['20']],
        ['25', 1, 1, undefined],
        ['30', 1, 1, undefined],
        ['31', 1, 2, undefined],
        ['13', 1, 0, undefined],
      ],
    );
  });
});

describe('foldedStatement: rounds of updates and increments as one change of each row', () => {
  const tallies = targetTable(
    'public.tallies',
    [
      col('id', 'int4', 'integer'),
      col('n', 'int4', 'integer', { notNull: true }),
      col('amount', 'numeric', 'numeric', { sqlType: 'numeric(4,1)', typmod: ((4 << 16) | 1) + 4 }),
    ],
    { primaryKey: ['id'], uniqueKeys: [['id']] },
  );
  const round = (ids: string[]) => claimedId(ids[0], { count: ids.length, ids });

  it('chains each column through the rounds in order, every step evaluated, refuses NULL for NOT NULL, tells missed rows', () => {
    const { sql, params } = foldedStatement([
      {
        table: tallies,
        type: 'increment',
        columns: ['amount'],
        keyColumns: ['id'],
        operations: [round(['2', '6', '7'])],
      },
      { table: tallies, type: 'update', columns: ['n', 'amount'], keyColumns: ['id'], operations: [round(['3', '8'])] },
    ]);
    const rows =
      `SELECT (o.row_key->>E'id')::integer AS k1, ` +
      `bool_or(o.round = 1) AS p1, (array_agg((o.row_values->>E'amount')::numeric) FILTER (WHERE o.round = 1))[1] AS p1v1, ` +
      `bool_or(o.round = 2) AS p2, (array_agg((o.row_values->>E'n')::integer) FILTER (WHERE o.round = 2))[1] AS p2v1, ` +
      `(array_agg((o.row_values->>E'amount')::numeric::numeric(4,1)) FILTER (WHERE o.round = 2))[1] AS p2v2, ` +
      `coalesce(bool_or((o.round = 2 AND (o.row_values->>E'n')::integer IS NULL)), false) AS refused, ` +
      `array_agg(o.id) AS ops ` +
      `FROM (SELECT op.id, op.row_key, op.row_values, ($3::int[])[(s.base + op.id)::int] AS round ` +
      `FROM (SELECT s.first_id, s.last_id, sum(s.last_id - s.first_id + 1) OVER (ORDER BY s.k)::bigint - s.last_id AS base ` +
      `FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS s(first_id, last_id, k)) s ` +
      `JOIN batch.operations op ON op.id BETWEEN s.first_id AND s.last_id OFFSET 0) o WHERE o.round > 0 GROUP BY 1`;
    const amount = `(ARRAY[(t."amount" + coalesce(g.p1v1, '-0'))::numeric(4,1), g.p2v2])[CASE WHEN g.p2 THEN 2 ELSE 1 END]`;
    const n = `(ARRAY[t."n", g.p2v1])[CASE WHEN g.p2 THEN 2 ELSE 1 END]`;
    assert.equal(
      sql,
      `WITH g AS MATERIALIZED (${rows}), changed AS (UPDATE "public"."tallies" AS t SET "amount" = ${amount}, "n" = ${n} ` +
        `FROM g WHERE t."id" = g.k1 AND NOT g.refused RETURNING g.ops) ` +
        `SELECT NOT EXISTS (SELECT FROM g WHERE g.refused) AS folded, ` +
        `CASE WHEN (SELECT count(*) FROM changed) < (SELECT count(*) FROM g) ` +
        `THEN ARRAY(SELECT unnest(g.ops) FROM g EXCEPT ALL SELECT unnest(c.ops) FROM changed c) END AS missed`,
    );
    assert.deepEqual(params, ['{2}', '{8}', '{1,2,0,0,1,1,2}'], 'ranges of ids, and the round of each id (0: none)');
  });
});
