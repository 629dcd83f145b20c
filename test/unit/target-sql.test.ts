import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClaimedOperation, StatementPlan } from '../../src/interfaces/chunk.interfaces';
import type { OperationType, RowValues } from '../../src/interfaces/operation.interfaces';
import type { TargetColumn, TargetTable } from '../../src/services/catalog.service';
import { column, targetTable } from '../support/catalog-fixtures';
import { deleteStatement, insertStatement, qualifiedName, targetStatement, upsertStatement } from '../../src/services/target-sql';

function col(name: string, baseType: string, castType: string, options: Partial<TargetColumn> = {}): TargetColumn {
  return column(name, baseType, { sqlType: castType, castType, ...options });
}

function table(schema: string, name: string, columns: TargetColumn[]): TargetTable {
  return targetTable(`${schema}.${name}`, columns, { primaryKey: ['id'], uniqueKeys: [['id']] });
}

function op(id: string, values: RowValues | null, key: RowValues | null = null): ClaimedOperation {
  return { id, clientId: '1', clientName: 'billing', target: 'public.items', type: 'insert', values, key, conflictKey: null, idempotencyKey: null, label: null };
}

function plan(target: TargetTable, type: OperationType, columns: string[], keyColumns: string[] | null, operations: ClaimedOperation[]): StatementPlan {
  return { target: target.name, type, columns, keyColumns, operations: operations.map((o) => ({ ...o, type })) };
}

const items = table('public', 'items', [
  col('id', 'int4', 'integer'),
  col('price', 'numeric', 'numeric', { sqlType: 'numeric(10,2)', typmod: ((10 << 16) | 2) + 4 }),
  col('sku', 'varchar', 'character varying', { sqlType: 'character varying(10)', typmod: 14 }),
  col('qty', 'int4', 'integer'),
  col('note', 'text', 'text'),
  col('tags', 'text', 'text[]', { isArray: true }),
  col('doc', 'jsonb', 'jsonb'),
  col('flag', 'bool', 'boolean'),
  col('tenant', 'int4', 'integer'),
  col('code', 'text', 'text'),
]);

describe('qualifiedName', () => {
  it('quotes schema and table, doubling embedded double quotes', () => {
    assert.equal(qualifiedName(items), '"public"."items"');
    assert.equal(qualifiedName(table('Sales "EU"', 'or"ders', [])), '"Sales ""EU"""."or""ders"');
  });
});

describe('insertStatement', () => {
  it('builds INSERT … SELECT from typed rows of unnest(text[]…) WITH ORDINALITY, ORDER BY v.ord, casting with castType', () => {
    const statement = insertStatement(items, plan(items, 'insert', ['id', 'price', 'sku'], null, [op('1', { id: 1, price: 2.5, sku: 'a' })]));
    assert.equal(
      statement.sql,
      'INSERT INTO "public"."items" ("id", "price", "sku") SELECT v.c1, v.c2, v.c3 FROM (' +
        'SELECT u.c1::integer AS c1, u.c2::numeric AS c2, u.c3::character varying AS c3, u.ord ' +
        'FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(c1, c2, c3, ord)' +
        ') v ORDER BY v.ord',
    );
    assert.equal(statement.everyRow, true);
  });

  it('does not cast to the type modifier (the assignment applies length and precision)', () => {
    const { sql } = insertStatement(items, plan(items, 'insert', ['price', 'sku'], null, [op('1', { price: 1, sku: 'a' })]));
    assert.doesNotMatch(sql, /numeric\(10,2\)|varying\(10\)/);
  });

  it('binds one text[] per column, one element per operation, in plan order', () => {
    const operations = [
      op('1', { id: 1, price: 2.5, sku: 'a' }),
      op('2', { id: '2', price: '3', sku: 'b"c' }),
      op('3', { id: 3, price: null, sku: 'd' }),
    ];
    const { params } = insertStatement(items, plan(items, 'insert', ['id', 'price', 'sku'], null, operations));
    assert.deepEqual(params, [
      ['1', '2', '3'],
      ['2.5', '3', null],
      ['a', 'b"c', 'd'],
    ]);
  });

  it('binds null for a value missing from an operation', () => {
    const { params } = insertStatement(items, plan(items, 'insert', ['id', 'sku'], null, [op('1', { id: 1 }), op('2', { sku: 'x' })]));
    assert.deepEqual(params, [
      ['1', null],
      [null, 'x'],
    ]);
  });

  it('encodes arrays as array literals, jsonb as JSON text and booleans as text', () => {
    const { params } = insertStatement(
      items,
      plan(items, 'insert', ['tags', 'doc', 'flag'], null, [op('1', { tags: ['a"b', null, 'c\\d'], doc: { k: [1, 'v'] }, flag: true })]),
    );
    assert.deepEqual(params, [['{"a\\"b",NULL,"c\\\\d"}'], ['{"k":[1,"v"]}'], ['true']]);
  });

  it('keeps the parameter count equal to the column count whatever the number of rows', () => {
    const operations = Array.from({ length: 5000 }, (_, i) => op(String(i + 1), { id: i, sku: `s${i}` }));
    const { sql, params } = insertStatement(items, plan(items, 'insert', ['id', 'sku'], null, operations));
    assert.equal(params.length, 2);
    assert.equal(params[0].length, 5000);
    assert.equal(params[0][4999], '4999');
    assert.deepEqual(sql.match(/\$\d+/g), ['$1', '$2']);
  });

  it('quotes table and column names that contain a double quote', () => {
    const odd = table('my schema', 'we"ird', [col('a"b', 'text', 'text'), col('Upper Case', 'int4', 'integer')]);
    const { sql, params } = insertStatement(odd, plan(odd, 'insert', ['a"b', 'Upper Case'], null, [op('1', { 'a"b': 'x', 'Upper Case': 7 })]));
    assert.equal(
      sql,
      'INSERT INTO "my schema"."we""ird" ("a""b", "Upper Case") SELECT v.c1, v.c2 FROM (' +
        'SELECT u.c1::text AS c1, u.c2::integer AS c2, u.ord FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(c1, c2, ord)' +
        ') v ORDER BY v.ord',
    );
    assert.deepEqual(params, [['x'], ['7']]);
  });

  it('uses quoted user-defined cast types as the catalog spells them', () => {
    const withEnum = table('public', 'moods', [col('m', 'mood', '"Mood"', { enumLabels: ['ok'] })]);
    const { sql } = insertStatement(withEnum, plan(withEnum, 'insert', ['m'], null, [op('1', { m: 'ok' })]));
    assert.match(sql, /SELECT u\.c1::"Mood" AS c1, u\.ord FROM/);
  });

  it('casts a column missing from the catalog as text, leaving the error to the database', () => {
    const { sql, params } = insertStatement(items, plan(items, 'insert', ['gone'], null, [op('1', { gone: 5 })]));
    assert.equal(
      sql,
      'INSERT INTO "public"."items" ("gone") SELECT v.c1 FROM (SELECT u.c1::text AS c1, u.ord FROM unnest($1::text[]) WITH ORDINALITY AS u(c1, ord)) v ORDER BY v.ord',
    );
    assert.deepEqual(params, [['5']]);
  });
});

describe('upsertStatement', () => {
  it('sets every given non-key column ON CONFLICT, one row affected per operation', () => {
    const statement = upsertStatement(items, plan(items, 'upsert', ['id', 'note', 'qty'], ['id'], [op('1', { id: 1, note: 'n', qty: 2 })]));
    assert.equal(
      statement.sql,
      'INSERT INTO "public"."items" ("id", "note", "qty") SELECT v.c1, v.c2, v.c3 FROM (' +
        'SELECT u.c1::integer AS c1, u.c2::text AS c2, u.c3::integer AS c3, u.ord FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(c1, c2, c3, ord)' +
        ') v ORDER BY v.ord ON CONFLICT ("id") DO UPDATE SET "note" = EXCLUDED."note", "qty" = EXCLUDED."qty"',
    );
    assert.equal(statement.everyRow, true);
    assert.deepEqual(statement.params, [['1'], ['n'], ['2']]);
  });

  it('with only key columns, does nothing on conflict and returns the ord of each row inserted', () => {
    const statement = upsertStatement(items, plan(items, 'upsert', ['code', 'tenant'], ['tenant', 'code'], [op('1', { tenant: 1, code: 'c' })]));
    assert.equal(
      statement.sql,
      'WITH v AS MATERIALIZED (SELECT u.c1::text AS c1, u.c2::integer AS c2, u.ord FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(c1, c2, ord)), ' +
        'ins AS (INSERT INTO "public"."items" ("code", "tenant") SELECT v.c1, v.c2 FROM v ORDER BY v.ord ' +
        'ON CONFLICT ("tenant", "code") DO NOTHING RETURNING "tenant", "code") ' +
        'SELECT min(v.ord) AS ord FROM v JOIN ins ON ins."tenant" = v.c2::integer AND ins."code" = v.c1::text GROUP BY ins."tenant", ins."code"',
    );
    assert.equal(statement.everyRow, false);
    assert.deepEqual(statement.params, [['c'], ['1']]);
  });

  it('is what targetStatement builds for an upsert plan', () => {
    const p = plan(items, 'upsert', ['id', 'qty'], ['id'], [op('1', { id: 1, qty: 2 })]);
    assert.deepEqual(targetStatement(items, p), upsertStatement(items, p));
  });
});

describe('targetStatement: update and increment', () => {
  it('update: UPDATE … AS t SET … FROM materialized typed rows WHERE the key matches RETURNING v.ord', () => {
    const operations = [op('1', { note: 'a', qty: 1 }, { id: 10 }), op('2', { note: null, qty: '2' }, { id: '11' })];
    const statement = targetStatement(items, plan(items, 'update', ['note', 'qty'], ['id'], operations));
    assert.equal(
      statement.sql,
      'WITH v AS MATERIALIZED (SELECT u.c1::text AS c1, u.c2::integer AS c2, u.c3::integer AS c3, u.ord ' +
        'FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(c1, c2, c3, ord)) ' +
        'UPDATE "public"."items" AS t SET "note" = v.c1, "qty" = v.c2 FROM v WHERE t."id" = v.c3 RETURNING v.ord',
    );
    assert.equal(statement.everyRow, false);
    assert.deepEqual(statement.params, [
      ['a', null],
      ['1', '2'],
      ['10', '11'],
    ]);
  });

  it('update by a composite key matches every key column', () => {
    const statement = targetStatement(items, plan(items, 'update', ['qty'], ['code', 'tenant'], [op('1', { qty: 1 }, { tenant: 2, code: 'x' })]));
    assert.match(statement.sql, / WHERE t\."code" = v\.c2 AND t\."tenant" = v\.c3 RETURNING v\.ord$/);
    assert.deepEqual(statement.params, [['1'], ['x'], ['2']]);
  });

  it('increment adds each delta to the current value', () => {
    const statement = targetStatement(items, plan(items, 'increment', ['price', 'qty'], ['id'], [op('1', { price: '-1.5', qty: 3 }, { id: 1 })]));
    assert.equal(
      statement.sql,
      'WITH v AS MATERIALIZED (SELECT u.c1::numeric AS c1, u.c2::integer AS c2, u.c3::integer AS c3, u.ord ' +
        'FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(c1, c2, c3, ord)) ' +
        'UPDATE "public"."items" AS t SET "price" = t."price" + v.c1, "qty" = t."qty" + v.c2 FROM v WHERE t."id" = v.c3 RETURNING v.ord',
    );
    assert.deepEqual(statement.params, [['-1.5'], ['3'], ['1']]);
  });

  it('quotes odd column names in SET and WHERE', () => {
    const odd = table('s', 't', [col('id', 'int4', 'integer'), col('we"ird', 'int4', 'integer')]);
    const statement = targetStatement(odd, plan(odd, 'increment', ['we"ird'], ['id'], [op('1', { 'we"ird': 1 }, { id: 1 })]));
    assert.match(statement.sql, /UPDATE "s"\."t" AS t SET "we""ird" = t\."we""ird" \+ v\.c1 FROM v WHERE t\."id" = v\.c2/);
  });
});

describe('deleteStatement', () => {
  it('DELETE … USING materialized typed rows WHERE the key matches RETURNING v.ord', () => {
    const p = plan(items, 'delete', [], ['id'], [op('1', null, { id: 5 }), op('2', null, { id: '6' })]);
    const statement = deleteStatement(items, p);
    assert.equal(
      statement.sql,
      'WITH v AS MATERIALIZED (SELECT u.c1::integer AS c1, u.ord FROM unnest($1::text[]) WITH ORDINALITY AS u(c1, ord)) ' +
        'DELETE FROM "public"."items" AS t USING v WHERE t."id" = v.c1 RETURNING v.ord',
    );
    assert.equal(statement.everyRow, false);
    assert.deepEqual(statement.params, [['5', '6']]);
    assert.deepEqual(targetStatement(items, p), statement);
  });
});
