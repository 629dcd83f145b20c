import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StatementPlan } from '../../src/interfaces/chunk.interfaces';
import type { OperationType, RowValues } from '../../src/interfaces/operation.interfaces';
import type { TargetTable } from '../../src/interfaces/catalog.interfaces';
import { canonicalValue, parseIdentity, planningOf } from '../../src/services/ingest/row-identity';
import { foldRounds, planRuns, planStatements as planClaimed } from '../../src/services/engine/statement-planner';
import { column, targetTable } from '../support/catalog-fixtures';
import { claimed, claimedId, RawOperation } from '../support/claimed';

const col = column;

function table(uniqueKeys: string[][], extra: Partial<TargetTable> = {}): TargetTable {
  const columns = [
    col('id', 'int4'),
    col('sku', 'text'),
    col('code', 'bpchar', { typmod: 9 }),
    col('qty', 'int4'),
    col('note', 'text'),
  ];
  return { ...targetTable('public.items', columns, { primaryKey: ['id'], uniqueKeys }), ...extra };
}

/** id PRIMARY KEY, sku UNIQUE, code char(5) UNIQUE. */
const items = table([['id'], ['sku'], ['code']]);
/** id PRIMARY KEY only. */
const single = table([['id']]);

let nextId = 1;
function op(
  type: OperationType,
  values: RowValues | null,
  key: RowValues | null = null,
  conflictKey: string[] | null = null,
): RawOperation {
  return { id: String(nextId++), type, values, key, conflictKey };
}

type Planned = Omit<StatementPlan, 'operations'> & { operations: RawOperation[] };

/** Plans the operations as a chunk claims them (their planning computed against `table`); statements list the given operations. */
function planStatements(table: TargetTable, operations: RawOperation[], maxRows: number): Planned[] {
  const raw = new Map<string, RawOperation>(operations.map((o) => [o.id, o]));
  return planClaimed(
    table,
    operations.map((o) => claimed(table, o)),
    { rows: maxRows, bytes: Infinity },
  ).map((s) => ({ ...s, operations: s.operations.map((o) => raw.get(o.id)!) }));
}
const insert = (values: RowValues) => op('insert', values);
const upsert = (values: RowValues, conflictKey: string[] | null = null) => op('upsert', values, null, conflictKey);
const update = (key: RowValues, values: RowValues = { qty: 1 }) => op('update', values, key);
const increment = (key: RowValues, values: RowValues = { qty: 1 }) => op('increment', values, key);
const remove = (key: RowValues) => op('delete', null, key);

/** The statements as lists of operations, by the operations' positions in `operations` (0-based). */
function groups(statements: Planned[], operations: RawOperation[]): number[][] {
  return statements.map((s) => s.operations.map((o) => operations.indexOf(o)));
}

function plan(target: TargetTable, operations: RawOperation[], maxRows = 1000): number[][] {
  return groups(planStatements(target, operations, maxRows), operations);
}

describe('planStatements: inserts', () => {
  it('plans nothing for no operations', () => {
    assert.deepEqual(planStatements(items, [], 10), []);
  });

  it('puts consecutive inserts with the same column set into one statement, in order', () => {
    const operations = [insert({ id: 1, sku: 'a' }), insert({ sku: 'b', id: 2 }), insert({ id: 3, sku: 'c' })];
    const statements = planStatements(items, operations, 1000);
    assert.equal(statements.length, 1);
    assert.deepEqual(statements[0], {
      table: items,
      type: 'insert',
      columns: ['id', 'sku'],
      keyColumns: null,
      operations,
    });
  });

  it('starts a new statement when the column set changes, and keeps inserts in their order', () => {
    const operations = [
      insert({ id: 1, qty: 1 }),
      insert({ id: 2 }),
      insert({ id: 3 }),
      insert({ id: 4, qty: 1 }),
      insert({ id: 5, qty: 1, note: null }),
    ];
    assert.deepEqual(plan(items, operations), [[0], [1, 2], [3], [4]]);
  });

  it('starts a new statement when the type changes, and keeps inserts and upserts in their order', () => {
    const operations = [
      insert({ id: 1, qty: 1 }),
      insert({ id: 2, qty: 1 }),
      upsert({ id: 3, qty: 1 }),
      insert({ id: 4, qty: 1 }),
    ];
    const statements = planStatements(items, operations, 1000);
    assert.deepEqual(groups(statements, operations), [[0, 1], [2], [3]]);
    assert.deepEqual(
      statements.map((s) => s.type),
      ['insert', 'upsert', 'insert'],
    );
  });

  it('splits a statement at the maximum number of rows', () => {
    const operations = Array.from({ length: 5 }, (_, i) => insert({ id: i }));
    assert.deepEqual(plan(items, operations, 2), [[0, 1], [2, 3], [4]]);
  });

  it('puts two inserts of the same key into different statements', () => {
    assert.deepEqual(plan(single, [insert({ id: 1 }), insert({ id: 1 })]), [[0], [1]]);
    // the same id written differently is still the same row
    assert.deepEqual(plan(single, [insert({ id: 7 }), insert({ id: ' +007' })]), [[0], [1]]);
  });
});

describe('planStatements: keys and key columns', () => {
  it('gives each statement the key columns its writer needs', () => {
    const operations = [
      insert({ id: 1 }),
      upsert({ id: 2, qty: 1 }),
      upsert({ id: 3, sku: 's', qty: 1 }, ['sku']),
      update({ sku: 'x' }),
      remove({ id: 9 }),
      increment({ id: 8 }),
    ];
    assert.deepEqual(
      planStatements(items, operations, 1000).map((s) => [s.type, s.columns, s.keyColumns]),
      [
        ['insert', ['id'], null],
        ['upsert', ['id', 'qty'], ['id']],
        ['upsert', ['id', 'qty', 'sku'], ['sku']],
        ['update', ['qty'], ['sku']],
        ['delete', [], ['id']],
        ['increment', ['qty'], ['id']],
      ],
    );
  });

  it('sorts composite key columns', () => {
    const composite = table([['id'], ['code', 'sku']]);
    const [statement] = planStatements(composite, [update({ sku: 'a', code: 'b' })], 10);
    assert.deepEqual(statement.keyColumns, ['code', 'sku']);
  });
});

describe('planStatements: one statement never touches a row twice', () => {
  it('updates of different rows share a statement; the same row again goes into a later one', () => {
    // the k-th update of a row goes into the k-th statement, also after a row's second update
    assert.deepEqual(plan(items, [update({ id: 1 }), update({ id: 2 }), update({ id: 1 }), update({ id: 3 })]), [
      [0, 1, 3],
      [2],
    ]);
    assert.deepEqual(
      plan(items, [update({ id: 1 }), update({ id: 2 }), update({ id: 1 }), update({ id: 2 }), update({ id: 1 })]),
      [[0, 1], [2, 3], [4]],
    );
  });

  it('rows that each get an insert, two increments and an update take four statements, however many rows', () => {
    const operations = [1, 2, 3].flatMap((id) => [
      insert({ id, qty: 0 }),
      increment({ id }),
      increment({ id }),
      update({ id }, { note: 'x' }),
    ]);
    assert.deepEqual(plan(single, operations), [
      [0, 4, 8],
      [1, 5, 9],
      [2, 6, 10],
      [3, 7, 11],
    ]);
    // a statement that is full is passed over: the next row's k-th operation goes into a later one of its shape
    assert.deepEqual(plan(single, operations, 2), [[0, 4], [1, 5], [2, 6], [3, 7], [8], [9], [10], [11]]);
  });

  it('an increment of the same row twice is not merged', () => {
    const operations = [increment({ id: 1 }, { qty: 5 }), increment({ id: 1 }, { qty: -5 })];
    const statements = planStatements(items, operations, 1000);
    assert.deepEqual(groups(statements, operations), [[0], [1]]);
    assert.deepEqual(statements[1].operations[0].values, { qty: -5 });
  });

  it('insert then update, delete then insert of one row keep their order', () => {
    assert.deepEqual(plan(items, [insert({ id: 1, qty: 1 }), update({ id: 1 })]), [[0], [1]]);
    assert.deepEqual(plan(items, [remove({ id: 1 }), insert({ id: 1, qty: 1 })]), [[0], [1]]);
    assert.deepEqual(plan(items, [insert({ id: 1, sku: 'a' }), update({ sku: 'a' })]), [[0], [1]]);
  });

  it('uuid keys are compared in canonical form', () => {
    const byUuid = {
      ...single,
      columns: new Map([
        ['id', col('id', 'uuid')],
        ['qty', col('qty', 'int4')],
      ]),
    };
    const a = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
    assert.deepEqual(plan(byUuid, [update({ id: a }), update({ id: `{${a.toUpperCase()}}` })]), [[0], [1]]);
  });
});

describe('planStatements: reordering only what commutes', () => {
  it('an update may join an earlier statement past an insert of a known other row', () => {
    assert.deepEqual(plan(items, [update({ id: 5 }), insert({ id: 7, sku: 'x' }), update({ id: 6 })]), [[0, 2], [1]]);
  });

  it('but not past an insert whose key is unknown (drawn from a default)', () => {
    assert.deepEqual(plan(items, [update({ id: 5 }), insert({ sku: 'x' }), update({ id: 6 })]), [[0], [1], [2]]);
  });

  it('not past an operation addressing the table through another unique key', () => {
    assert.deepEqual(plan(items, [update({ id: 1 }), update({ sku: 'a' }), update({ id: 2 })]), [[0], [1], [2]]);
  });

  it('not past an operation whose key has no canonical form (char(n))', () => {
    assert.deepEqual(plan(items, [update({ id: 1 }), update({ code: 'x' }), update({ id: 2 })]), [[0], [1], [2]]);
  });

  it('not past an update that changes a unique column (a barrier)', () => {
    assert.deepEqual(plan(items, [update({ id: 1 }), update({ id: 2 }, { sku: 'new' }), update({ id: 3 })]), [
      [0],
      [1],
      [2],
    ]);
    // the same with a column that is not unique: no barrier
    assert.deepEqual(plan(items, [update({ id: 1 }), update({ id: 2 }, { note: 'n' }), update({ id: 3 })]), [
      [0, 2],
      [1],
    ]);
  });

  it('with more than one unique key, deletes and inserts keep their relative order', () => {
    assert.deepEqual(plan(items, [insert({ id: 1, sku: 'a' }), remove({ id: 2 }), insert({ id: 3, sku: 'b' })]), [
      [0],
      [1],
      [2],
    ]);
  });

  it('with only the primary key, inserts of other rows may share a statement across a delete', () => {
    assert.deepEqual(plan(single, [insert({ id: 1 }), remove({ id: 2 }), insert({ id: 3 })]), [[0, 2], [1]]);
  });
});

describe('planStatements: tables that need one-row statements', () => {
  it('gives every operation a statement of its own, in order', () => {
    const triggered = table([['id']], { oneRowStatements: true });
    const operations = [insert({ id: 1 }), insert({ id: 2 }), update({ id: 1 }), update({ id: 2 })];
    const statements = planStatements(triggered, operations, 1000);
    assert.deepEqual(groups(statements, operations), [[0], [1], [2], [3]]);
    assert.deepEqual(
      statements.map((s) => s.keyColumns),
      [null, null, ['id'], ['id']],
    );
  });
});

describe('planStatements: invariants over random streams', () => {
  /** A small deterministic generator, so that a failure is reproducible. */
  function random(seed: number) {
    let state = seed >>> 0;
    return (n: number) => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state % n;
    };
  }

  function randomStream(next: (n: number) => number, length: number): RawOperation[] {
    return Array.from({ length }, () => {
      const id = next(6);
      const sku = `s${next(6)}`;
      switch (next(7)) {
        case 0:
          return insert({ id, sku, qty: next(3) });
        case 1:
          return insert(next(2) ? { id } : { id, qty: 1 });
        case 2:
          return upsert({ id, qty: next(3) });
        case 3:
          return update(next(2) ? { id } : { sku }, { qty: next(3) });
        case 4:
          return increment({ id });
        case 5:
          return remove(next(2) ? { id } : { sku });
        default:
          return update({ id }, next(2) ? { note: 'n' } : { sku });
      }
    });
  }

  /** The (key, value) pairs naming the row an operation addresses or creates. */
  function rowNames(operation: RawOperation): string[] {
    const row = operation.type === 'insert' || operation.type === 'upsert' ? operation.values! : operation.key!;
    return ['id', 'sku'].filter((c) => row[c] !== undefined).map((c) => `${c}=${String(row[c])}`);
  }

  it('every operation is planned exactly once; statements are homogeneous and within the row limit', () => {
    const next = random(1);
    for (let run = 0; run < 300; run++) {
      const operations = randomStream(next, 1 + next(40));
      const maxRows = 1 + next(5);
      const statements = planStatements(items, operations, maxRows);
      const planned = statements.flatMap((s) => s.operations);
      assert.equal(planned.length, operations.length);
      assert.deepEqual(new Set(planned), new Set(operations));
      for (const s of statements) {
        assert.ok(s.operations.length >= 1 && s.operations.length <= maxRows);
        for (const o of s.operations) {
          assert.equal(o.type, s.type);
          assert.deepEqual(Object.keys(o.values ?? {}).sort(), s.columns);
        }
      }
    }
  });

  it('operations naming the same row are in different statements, in their order', () => {
    const next = random(2);
    for (let run = 0; run < 300; run++) {
      const operations = randomStream(next, 1 + next(40));
      const statements = planStatements(items, operations, 1000);
      const statementOf = new Map(statements.flatMap((s, i) => s.operations.map((o) => [o, i] as const)));
      for (let a = 0; a < operations.length; a++) {
        for (let b = a + 1; b < operations.length; b++) {
          const shared = rowNames(operations[a]).some((name) => rowNames(operations[b]).includes(name));
          if (shared) {
            assert.ok(
              statementOf.get(operations[a])! < statementOf.get(operations[b])!,
              `run ${run}: operations ${a} and ${b} name the same row but are planned in statements ${statementOf.get(operations[a])} and ${statementOf.get(operations[b])}`,
            );
          }
        }
      }
    }
  });

  it('inserts and upserts keep their relative order', () => {
    const next = random(3);
    for (let run = 0; run < 300; run++) {
      const operations = randomStream(next, 1 + next(40));
      const statements = planStatements(items, operations, 1 + next(5));
      const order = statements.flatMap((s) => s.operations).filter((o) => o.type === 'insert' || o.type === 'upsert');
      assert.deepEqual(
        order,
        operations.filter((o) => o.type === 'insert' || o.type === 'upsert'),
      );
    }
  });
});

describe('canonicalValue', () => {
  it('gives integers one text however they are written', () => {
    const int8 = col('id', 'int8');
    assert.equal(canonicalValue(int8, 7), '7');
    assert.equal(canonicalValue(int8, ' +007 '), '7');
    assert.equal(canonicalValue(int8, '-0'), '0');
    assert.equal(canonicalValue(int8, '9223372036854775807'), '9223372036854775807');
  });

  it('gives uuids one text however they are written', () => {
    const uuid = col('id', 'uuid');
    assert.equal(
      canonicalValue(uuid, '{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}'),
      canonicalValue(uuid, 'a0eebc999c0b4ef8bb6d6bb9bd380a11'),
    );
  });

  it('takes text and enum labels as they are', () => {
    assert.equal(canonicalValue(col('sku', 'text'), 'Ab '), 'Ab ');
    assert.equal(canonicalValue(col('m', 'mood', { enumLabels: ['ok'] }), 'ok'), 'ok');
  });

  it('has none for types whose equal values can be written differently, for arrays, objects and null', () => {
    assert.equal(canonicalValue(col('n', 'numeric'), '1.0'), null);
    assert.equal(canonicalValue(col('c', 'bpchar'), 'a'), null);
    assert.equal(canonicalValue(col('t', 'timestamptz'), '2026-01-01T00:00:00Z'), null);
    assert.equal(canonicalValue(col('a', 'int4', { isArray: true }), [1]), null);
    assert.equal(canonicalValue(col('j', 'text'), { a: 1 }), null);
    assert.equal(canonicalValue(col('i', 'int4'), null), null);
    assert.equal(canonicalValue(col('i', 'int4'), undefined), null);
    assert.equal(canonicalValue(col('i', 'int4'), '1.5'), null);
  });
});

describe('parseIdentity: the stored identity, read back', () => {
  it('reads what planningOf wrote, for every way an operation addresses its rows', () => {
    const identity = (type: OperationType, values: RowValues | null, key: RowValues | null) =>
      parseIdentity(planningOf(items, { type, values, key, conflictKey: null }).identity);
    const insert = identity('insert', { id: 1, sku: 'a', code: 'x' }, null);
    assert.equal(insert.tokens.length, 3);
    assert.deepEqual([insert.key, insert.keys, insert.barrier], [undefined, ['k0', 'k1'], false]);
    const update = identity('update', { note: 'n' }, { sku: 'a' });
    assert.deepEqual([update.tokens.length, update.key, update.keys, update.barrier], [1, 'k1', [], false]);
    assert.equal(update.tokens[0], insert.tokens[1], 'the same row, the same token');
    const barrier = identity('update', { sku: 'b' }, { id: 1 });
    assert.deepEqual([barrier.key, barrier.barrier], ['k0', true]);
    const unknown = identity('delete', null, { code: 'x' });
    assert.equal(unknown.key, null, 'char(n) values have no canonical form here');
  });

  it('gives operations of the same type, columns and key one shape, whatever order they name them in', () => {
    const shape = (
      type: OperationType,
      values: RowValues | null,
      key: RowValues | null,
      conflictKey: string[] | null = null,
    ) => planningOf(items, { type, values, key, conflictKey }).shape;
    const insert = shape('insert', { id: 1, sku: 'a' }, null);
    assert.equal(shape('insert', { sku: 'b', id: 2 }, null), insert);
    assert.deepEqual(JSON.parse(insert).slice(0, 3), ['insert', ['id', 'sku'], null]);
    assert.notEqual(shape('insert', { id: 1, note: 'n' }, null), insert, 'other columns');
    assert.notEqual(shape('upsert', { id: 1, sku: 'a' }, null, ['id']), insert, 'another type');
    assert.notEqual(
      shape('upsert', { id: 1, sku: 'a' }, null, ['sku']),
      shape('upsert', { id: 1, sku: 'a' }, null, ['id']),
    );
    const update = shape('update', { note: 'n', qty: 1 }, { id: 1 });
    assert.equal(shape('update', { qty: 2, note: 'm' }, { id: 2 }), update);
    assert.notEqual(shape('update', { note: 'n', qty: 1 }, { sku: 'a' }), update, 'another key');
    assert.notEqual(shape('update', { note: 'n' }, { id: 1 }), update);
  });

  it('reads an identity stored without one (before planning was stored) as touching nothing known', () => {
    assert.deepEqual(parseIdentity(''), { tokens: [], key: undefined, keys: [], barrier: false });
    assert.deepEqual(parseIdentity('a b'), { tokens: ['a', 'b'], key: undefined, keys: [], barrier: false });
  });
});

describe('planning runs: inserts and upserts taken whole from a stream', () => {
  const shapeOf = (values: RowValues) => claimed(single, op('insert', values)).shape;
  const run = (id: string, count: number, shape = shapeOf({ id: 1, qty: 1 }), bytes = count * 10) =>
    claimedId(id, { count, shape, bytes, chars: 8 * count, identity: null, target: single.name });
  const spans = (statements: StatementPlan[]) => statements.map((s) => s.operations.map((o) => `${o.id}+${o.count}`));

  it('fills each statement up to its rows in order, cutting a run where a statement is full', () => {
    const statements = planRuns(single, [run('1', 3), run('10', 4), run('20', 1)], { rows: 5, bytes: Infinity });
    assert.deepEqual(spans(statements), [
      ['1+3', '10+2'],
      ['12+2', '20+1'],
    ]);
    assert.deepEqual(
      statements.map((s) => [s.type, s.columns]),
      [
        ['insert', ['id', 'qty']],
        ['insert', ['id', 'qty']],
      ],
    );
    assert.deepEqual(
      statements[0].operations.map((o) => o.bytes),
      [30, 20],
      'a run cut shares its bytes',
    );
  });

  it('starts a statement where the shape changes, keeping the order of application', () => {
    const other = shapeOf({ id: 1, note: 'n' });
    assert.deepEqual(
      spans(planRuns(single, [run('1', 2), run('3', 1, other), run('4', 2)], { rows: 100, bytes: Infinity })),
      [['1+2'], ['3+1'], ['4+2']],
    );
  });

  it("cuts by bytes at the run's average size, and gives every operation its own statement where the table needs one", () => {
    assert.deepEqual(spans(planRuns(single, [run('1', 10, undefined, 100)], { rows: 100, bytes: 35 })), [
      ['1+4'],
      ['5+4'],
      ['9+2'],
    ]);
    assert.deepEqual(
      spans(planRuns({ ...single, oneRowStatements: true }, [run('1', 3)], { rows: 100, bytes: Infinity })),
      [['1+1'], ['2+1'], ['3+1']],
    );
  });

  it('gives each round statements of its own, cut where a statement is full, never merged with a run or another round', () => {
    const round = (ids: string[]) => ({ ...run(ids[0], ids.length), ids });
    const statements = planRuns(
      single,
      [run('1', 1), round(['2', '6', '10']), round(['3', '7']), round(['4', '8', '12', '16'])],
      { rows: 3, bytes: Infinity },
    );
    assert.deepEqual(
      statements.map((s) => s.operations.map((o) => o.ids ?? `${o.id}+${o.count}`)),
      [['1+1'], [['2', '6', '10']], [['3', '7']], [['4', '8', '12']], [['16']]],
    );
    assert.deepEqual(
      statements.slice(3).map((s) => s.operations.map((o) => [o.id, o.count, o.bytes])),
      [[['4', 3, 30]], [['16', 1, 10]]],
      'a round cut shares its bytes',
    );
  });
});

describe('foldRounds: rounds of updates and increments applied as one change of each row', () => {
  const tallies = targetTable(
    'public.tallies',
    [
      column('id', 'int4'),
      column('n', 'int4'),
      column('amount', 'numeric', { sqlType: 'numeric(4,1)', typmod: ((4 << 16) | 1) + 4 }),
      column('tag', 'varchar', { sqlType: 'character varying(4)', typmod: 8 }),
      column('tags', 'text', { isArray: true }),
    ],
    { primaryKey: ['id'], uniqueKeys: [['id']] },
  );
  /** A statement of one round (ids listed) or of one run, of a type setting `columns` through the primary key. */
  const statement = (type: OperationType, columns: string[], round = true, table = tallies): StatementPlan => {
    const { shape } = claimed(table, op(type, Object.fromEntries(columns.map((c) => [c, 1])), { id: 1 }));
    const operation = claimedId(String(nextId++), { shape, ...(round ? { ids: [String(nextId)] } : {}) });
    return { table, type, columns, keyColumns: ['id'], operations: [operation] };
  };
  const sizes = (statements: StatementPlan[]) => foldRounds(statements).map((group) => group.length);

  it('folds successive rounds of updates and increments, and nothing else', () => {
    const insert = { ...statement('update', ['n']), type: 'insert' as const, keyColumns: null };
    assert.deepEqual(
      sizes([insert, statement('increment', ['n']), statement('increment', ['amount']), statement('update', ['n'])]),
      [1, 3],
    );
    assert.deepEqual(
      sizes([statement('update', ['n']), statement('delete', []), statement('increment', ['n'])]),
      [1, 1, 1],
      'a delete ends a fold',
    );
    assert.deepEqual(sizes([statement('update', ['n']), statement('update', ['n'], false)]), [1, 1], 'not a run');
  });

  it('not where a cast would differ from an assignment, nor for arrays, nor where the table checks rows', () => {
    assert.deepEqual(sizes([statement('update', ['n']), statement('update', ['tag'])]), [1, 1], 'varchar(4) is cut');
    assert.deepEqual(sizes([statement('update', ['n']), statement('update', ['tags'])]), [1, 1]);
    assert.deepEqual(sizes([statement('update', ['n']), statement('update', ['amount'])]), [2], 'numeric rounds');
    const checked = { ...tallies, foldsRowChanges: false };
    assert.deepEqual(
      sizes([statement('update', ['n'], true, checked), statement('increment', ['n'], true, checked)]),
      [1, 1],
    );
  });

  it('folds at most 16 rounds into one statement', () => {
    assert.deepEqual(sizes(Array.from({ length: 20 }, () => statement('increment', ['n']))), [16, 4]);
  });
});
