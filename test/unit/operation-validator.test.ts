import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ICreateBatchOperationRequest, RowValues } from '../../src/interfaces/operation.interfaces';
import type { TargetColumn, TargetTable } from '../../src/interfaces/catalog.interfaces';
import { column, targetTable } from '../support/catalog-fixtures';
import { checkShape } from '../../src/services/ingest/operation-validator.service';

type Problems = ReturnType<typeof checkShape>;

const col = column;

function table(
  name: string,
  columns: TargetColumn[],
  primaryKey: string[] | null,
  uniqueKeys: string[][],
): TargetTable {
  return targetTable(name, columns, { primaryKey, uniqueKeys });
}

/**
 * public.items: id integer PRIMARY KEY, sku varchar(10) UNIQUE, tenant integer NOT NULL DEFAULT 1,
 * code text NOT NULL DEFAULT '', UNIQUE (tenant, code), name text NOT NULL, qty integer NOT NULL DEFAULT 0,
 * price numeric(10,2), note text, total bigint GENERATED ALWAYS AS (…) STORED, tags text[].
 */
const items = table(
  'public.items',
  [
    col('id', 'int4', { sqlType: 'integer', notNull: true }),
    col('sku', 'varchar', { sqlType: 'character varying(10)', typmod: 14 }),
    col('tenant', 'int4', { sqlType: 'integer', notNull: true, hasDefault: true }),
    col('code', 'text', { notNull: true, hasDefault: true }),
    col('name', 'text', { notNull: true }),
    col('qty', 'int4', { sqlType: 'integer', notNull: true, hasDefault: true }),
    col('price', 'numeric', { sqlType: 'numeric(10,2)', typmod: ((10 << 16) | 2) + 4 }),
    col('note', 'text'),
    col('total', 'int8', { sqlType: 'bigint', hasDefault: true, generatedAlways: true }),
    col('tags', 'text', { sqlType: 'text[]', isArray: true }),
  ],
  ['id'],
  [['id'], ['sku'], ['tenant', 'code']],
);

/** public.logs: no primary key; ref integer UNIQUE; msg text. */
const logs = table('public.logs', [col('ref', 'int4'), col('msg', 'text')], null, [['ref']]);

/** public.events: no key at all. */
const events = table('public.events', [col('msg', 'text')], null, []);

function request(
  type: ICreateBatchOperationRequest['type'],
  rest: Partial<ICreateBatchOperationRequest> = {},
): ICreateBatchOperationRequest {
  return { target: 'items', type, ...rest };
}

function fields(problems: Problems): string[] {
  return problems.map((p) => p.field);
}

function assertValid(problems: Problems): void {
  assert.deepEqual(problems, []);
}

/** Asserts that exactly one problem concerns `field`, with the given code and a message matching `message`. */
function assertProblem(
  problems: Problems,
  field: string,
  code: 'VALIDATION_FAILED' | 'UNKNOWN_COLUMN',
  message: RegExp,
): void {
  const matching = problems.filter((p) => p.field === field);
  assert.equal(matching.length, 1, `expected one problem on ${field}, got ${JSON.stringify(problems)}`);
  assert.equal(matching[0].code, code);
  assert.match(matching[0].message, message);
}

describe('checkShape: insert', () => {
  it('accepts a row with every required column', () => {
    assertValid(checkShape(items, request('insert', { values: { id: 1, name: 'a' } })));
    assertValid(
      checkShape(
        items,
        request('insert', { values: { id: 1, name: 'a', sku: null, note: null, tags: ['x', null], price: '12.34' } }),
      ),
    );
  });

  it('needs values', () => {
    assertProblem(
      checkShape(items, request('insert')),
      'values',
      'VALIDATION_FAILED',
      /insert needs at least one column/,
    );
    assertProblem(
      checkShape(items, request('insert', { values: {} })),
      'values',
      'VALIDATION_FAILED',
      /insert needs at least one column/,
    );
  });

  it('takes no key and no conflictKey', () => {
    const problems = checkShape(
      items,
      request('insert', { values: { id: 1, name: 'a' }, key: { id: 1 }, conflictKey: ['id'] }),
    );
    assertProblem(problems, 'key', 'VALIDATION_FAILED', /insert takes no "key"/);
    assertProblem(problems, 'conflictKey', 'VALIDATION_FAILED', /only upsert takes a "conflictKey"/);
  });

  it('requires every NOT NULL column without a default, and only those', () => {
    const problems = checkShape(items, request('insert', { values: { note: 'x' } }));
    assert.deepEqual(fields(problems).sort(), ['values.id', 'values.name']);
    assertProblem(problems, 'values.name', 'VALIDATION_FAILED', /Column "name" is required/);
  });

  it('refuses null for a NOT NULL column, with or without a default', () => {
    assertProblem(
      checkShape(items, request('insert', { values: { id: 1, name: null } })),
      'values.name',
      'VALIDATION_FAILED',
      /cannot be null/,
    );
    assertProblem(
      checkShape(items, request('insert', { values: { id: 1, name: 'a', qty: null } })),
      'values.qty',
      'VALIDATION_FAILED',
      /cannot be null/,
    );
  });

  it('reports an unknown column as UNKNOWN_COLUMN; names match exactly', () => {
    const problems = checkShape(items, request('insert', { values: { id: 1, name: 'a', nope: 1, Name: 'b' } }));
    assertProblem(problems, 'values.nope', 'UNKNOWN_COLUMN', /Unknown column "nope" on target "public.items"/);
    assertProblem(problems, 'values.Name', 'UNKNOWN_COLUMN', /Unknown column "Name"/);
  });

  it('refuses a generated column', () => {
    assertProblem(
      checkShape(items, request('insert', { values: { id: 1, name: 'a', total: 5 } })),
      'values.total',
      'VALIDATION_FAILED',
      /Column "total" is generated and cannot be written/,
    );
  });

  it('refuses a value its column type cannot take', () => {
    const problems = checkShape(
      items,
      request('insert', { values: { id: 'x', name: 'a', sku: 'elevenchars', price: 123456789.999 } }),
    );
    assertProblem(problems, 'values.id', 'VALIDATION_FAILED', /Column "id" expects an integer/);
    assertProblem(problems, 'values.sku', 'VALIDATION_FAILED', /Column "sku" is longer than 10 characters/);
    assertProblem(problems, 'values.price', 'VALIDATION_FAILED', /Column "price" is out of range for numeric\(10,2\)/);
  });
});

describe('checkShape: upsert', () => {
  it('defaults the conflict key to the primary key', () => {
    assertValid(checkShape(items, request('upsert', { values: { id: 1, name: 'a', qty: 2 } })));
  });

  it('needs a value for every column of the primary key used as conflict key', () => {
    assertProblem(
      checkShape(items, request('upsert', { values: { sku: 's', name: 'a', id: null } })),
      'values.id',
      'VALIDATION_FAILED',
      /cannot be null/,
    );
  });

  it('accepts a unique key as conflictKey, in any column order', () => {
    assertValid(checkShape(items, request('upsert', { values: { id: 1, name: 'a', sku: 's' }, conflictKey: ['sku'] })));
    assertValid(
      checkShape(
        items,
        request('upsert', { values: { id: 1, name: 'a', tenant: 2, code: 'c' }, conflictKey: ['code', 'tenant'] }),
      ),
    );
  });

  it('needs a non-null value for each conflictKey column', () => {
    assertProblem(
      checkShape(items, request('upsert', { values: { id: 1, name: 'a' }, conflictKey: ['sku'] })),
      'values.sku',
      'VALIDATION_FAILED',
      /conflict key needs a value/,
    );
    assertProblem(
      checkShape(items, request('upsert', { values: { id: 1, name: 'a', sku: null }, conflictKey: ['sku'] })),
      'values.sku',
      'VALIDATION_FAILED',
      /conflict key needs a value/,
    );
  });

  it('refuses a conflictKey that is not exactly a primary or unique key', () => {
    for (const conflictKey of [['note'], ['tenant'], ['id', 'sku'], []]) {
      assertProblem(
        checkShape(
          items,
          request('upsert', { values: { id: 1, name: 'a', note: 'n', tenant: 1, sku: 's' }, conflictKey }),
        ),
        'conflictKey',
        'VALIDATION_FAILED',
        /must name exactly the primary key or one unique key of "public.items": \(id\) or \(sku\) or \(tenant, code\)/,
      );
    }
  });

  it('reports an unknown conflictKey column as UNKNOWN_COLUMN', () => {
    assertProblem(
      checkShape(items, request('upsert', { values: { id: 1, name: 'a' }, conflictKey: ['nope'] })),
      'conflictKey',
      'UNKNOWN_COLUMN',
      /Unknown column "nope"/,
    );
  });

  it('needs a conflictKey when the table has no primary key', () => {
    assertProblem(
      checkShape(logs, request('upsert', { target: 'logs', values: { ref: 1 } })),
      'conflictKey',
      'VALIDATION_FAILED',
      /has no primary key/,
    );
    assertValid(
      checkShape(logs, request('upsert', { target: 'logs', values: { ref: 1, msg: 'm' }, conflictKey: ['ref'] })),
    );
  });

  it('still requires NOT NULL columns without default, refuses a key and generated columns', () => {
    const problems = checkShape(items, request('upsert', { values: { id: 1 }, key: { id: 1 } }));
    assertProblem(problems, 'key', 'VALIDATION_FAILED', /upsert takes no "key"/);
    assert.deepEqual(
      checkShape(items, request('upsert', { values: { id: 1 } })).map((p) => p.field),
      ['values.name'],
    );
    assertProblem(
      checkShape(items, request('upsert', { values: { id: 1, name: 'a', total: 1 } })),
      'values.total',
      'VALIDATION_FAILED',
      /generated/,
    );
  });
});

describe('checkShape: update', () => {
  it('accepts values and the primary key, without the required columns', () => {
    assertValid(checkShape(items, request('update', { values: { note: 'x' }, key: { id: 1 } })));
  });

  it('accepts any unique key, in any column order', () => {
    assertValid(checkShape(items, request('update', { values: { qty: 3 }, key: { sku: 's' } })));
    assertValid(checkShape(items, request('update', { values: { qty: 3 }, key: { code: 'c', tenant: 1 } })));
  });

  it('needs values and a key', () => {
    const problems = checkShape(items, request('update'));
    assertProblem(problems, 'values', 'VALIDATION_FAILED', /update needs at least one column/);
    assertProblem(problems, 'key', 'VALIDATION_FAILED', /update needs a "key"/);
    assertProblem(
      checkShape(items, request('update', { values: { qty: 1 }, key: {} })),
      'key',
      'VALIDATION_FAILED',
      /update needs a "key"/,
    );
  });

  it('refuses a key that is not exactly a primary or unique key', () => {
    const keys: RowValues[] = [{ note: 'x' }, { id: 1, sku: 's' }, { tenant: 1 }];
    for (const key of keys) {
      assertProblem(
        checkShape(items, request('update', { values: { qty: 1 }, key })),
        'key',
        'VALIDATION_FAILED',
        /"key" must name exactly the primary key or one unique key/,
      );
    }
  });

  it('refuses a key on a table without keys', () => {
    assertProblem(
      checkShape(events, request('update', { target: 'events', values: { msg: 'x' }, key: { msg: 'y' } })),
      'key',
      'VALIDATION_FAILED',
      /it has none/,
    );
  });

  it('refuses null in the key, even for a nullable column', () => {
    assertProblem(
      checkShape(items, request('update', { values: { qty: 1 }, key: { sku: null } })),
      'key.sku',
      'VALIDATION_FAILED',
      /cannot be null/,
    );
    assertProblem(
      checkShape(items, request('update', { values: { qty: 1 }, key: { id: null } })),
      'key.id',
      'VALIDATION_FAILED',
      /cannot be null/,
    );
  });

  it('refuses null for a NOT NULL column, allows it for a nullable one', () => {
    assertProblem(
      checkShape(items, request('update', { values: { name: null }, key: { id: 1 } })),
      'values.name',
      'VALIDATION_FAILED',
      /cannot be null/,
    );
    assertValid(checkShape(items, request('update', { values: { note: null }, key: { id: 1 } })));
  });

  it('refuses a key value its column cannot take', () => {
    assertProblem(
      checkShape(items, request('update', { values: { qty: 1 }, key: { id: 2 ** 31 } })),
      'key.id',
      'VALIDATION_FAILED',
      /out of range/,
    );
  });

  it('reports unknown columns in values and key as UNKNOWN_COLUMN', () => {
    const problems = checkShape(items, request('update', { values: { nope: 1 }, key: { other: 1 } }));
    assertProblem(problems, 'values.nope', 'UNKNOWN_COLUMN', /Unknown column "nope"/);
    assertProblem(problems, 'key.other', 'UNKNOWN_COLUMN', /Unknown column "other"/);
  });

  it('refuses a generated column and a conflictKey', () => {
    const problems = checkShape(
      items,
      request('update', { values: { total: 1 }, key: { id: 1 }, conflictKey: ['id'] }),
    );
    assertProblem(problems, 'values.total', 'VALIDATION_FAILED', /generated/);
    assertProblem(problems, 'conflictKey', 'VALIDATION_FAILED', /only upsert/);
  });
});

describe('checkShape: delete', () => {
  it('accepts a key alone', () => {
    assertValid(checkShape(items, request('delete', { key: { id: 1 } })));
    assertValid(checkShape(items, request('delete', { key: { tenant: 1, code: 'c' } })));
  });

  it('takes no values, not even empty ones', () => {
    assertProblem(
      checkShape(items, request('delete', { key: { id: 1 }, values: { note: 'x' } })),
      'values',
      'VALIDATION_FAILED',
      /delete takes no "values"/,
    );
    assertProblem(
      checkShape(items, request('delete', { key: { id: 1 }, values: {} })),
      'values',
      'VALIDATION_FAILED',
      /delete takes no "values"/,
    );
  });

  it('needs a key that is a primary or unique key', () => {
    assertProblem(checkShape(items, request('delete')), 'key', 'VALIDATION_FAILED', /delete needs a "key"/);
    assertProblem(
      checkShape(items, request('delete', { key: { name: 'a' } })),
      'key',
      'VALIDATION_FAILED',
      /must name exactly/,
    );
  });

  it('refuses a conflictKey', () => {
    assertProblem(
      checkShape(items, request('delete', { key: { id: 1 }, conflictKey: ['id'] })),
      'conflictKey',
      'VALIDATION_FAILED',
      /only upsert/,
    );
  });
});

describe('checkShape: increment', () => {
  it('accepts numeric deltas on numeric columns, negative ones included', () => {
    assertValid(checkShape(items, request('increment', { values: { qty: -2, price: '1.25' }, key: { id: 1 } })));
  });

  it('needs values and a key', () => {
    const problems = checkShape(items, request('increment'));
    assert.deepEqual(fields(problems).sort(), ['key', 'values']);
  });

  it('refuses a column that is not numeric', () => {
    assertProblem(
      checkShape(items, request('increment', { values: { note: '1' }, key: { id: 1 } })),
      'values.note',
      'VALIDATION_FAILED',
      /Column "note" is not numeric and cannot be incremented/,
    );
    const problems = checkShape(items, request('increment', { values: { tags: ['a'] }, key: { id: 1 } }));
    assert.ok(
      problems.some((p) => p.field === 'values.tags' && /not numeric/.test(p.message)),
      JSON.stringify(problems),
    );
  });

  it('refuses a null delta even for a nullable column', () => {
    assertProblem(
      checkShape(items, request('increment', { values: { price: null }, key: { id: 1 } })),
      'values.price',
      'VALIDATION_FAILED',
      /cannot be null/,
    );
  });

  it('refuses a delta the column type cannot take', () => {
    assertProblem(
      checkShape(items, request('increment', { values: { qty: 1.5 }, key: { id: 1 } })),
      'values.qty',
      'VALIDATION_FAILED',
      /expects an integer/,
    );
  });

  it('refuses NaN and the infinities as deltas, for numeric and float columns alike', () => {
    const gauges = table(
      'public.gauges',
      [col('id', 'int4', { notNull: true }), col('level', 'float8'), col('balance', 'numeric')],
      ['id'],
      [['id']],
    );
    for (const delta of ['NaN', '+NaN', 'Infinity', '-inf']) {
      assertProblem(
        checkShape(gauges, request('increment', { target: 'gauges', values: { level: delta }, key: { id: 1 } })),
        'values.level',
        'VALIDATION_FAILED',
        /cannot be incremented by NaN or an infinity/,
      );
      assertProblem(
        checkShape(gauges, request('increment', { target: 'gauges', values: { balance: delta }, key: { id: 1 } })),
        'values.balance',
        'VALIDATION_FAILED',
        /takes no NaN or infinity/,
      );
    }
    assertValid(checkShape(gauges, request('update', { target: 'gauges', values: { level: 'NaN' }, key: { id: 1 } })));
  });

  it('refuses a generated column and a non-unique key', () => {
    assertProblem(
      checkShape(items, request('increment', { values: { total: 1 }, key: { id: 1 } })),
      'values.total',
      'VALIDATION_FAILED',
      /generated/,
    );
    assertProblem(
      checkShape(items, request('increment', { values: { qty: 1 }, key: { qty: 1 } })),
      'key',
      'VALIDATION_FAILED',
      /must name exactly/,
    );
  });
});

describe('checkShape: column names that are also Object.prototype members', () => {
  it('reports a required column named constructor as missing', () => {
    const odd = table(
      'public.odd',
      [col('id', 'int4', { notNull: true }), col('constructor', 'text', { notNull: true })],
      ['id'],
      [['id']],
    );
    assertProblem(
      checkShape(odd, request('insert', { target: 'odd', values: { id: 1 } })),
      'values.constructor',
      'VALIDATION_FAILED',
      /required/,
    );
  });
});
