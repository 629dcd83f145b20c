import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/app-config';
import type { ClaimedOperation, Grants } from '../../src/interfaces/chunk.interfaces';
import type { RowValues } from '../../src/interfaces/operation.interfaces';
import type { TargetTable } from '../../src/interfaces/catalog.interfaces';
import type { CatalogService } from '../../src/services/storage/catalog.service';
import { ChunkPlanner } from '../../src/services/engine/chunk-planner.service';
import { column, targetTable } from '../support/catalog-fixtures';
import { claimed } from '../support/claimed';

function target(name: string): TargetTable {
  const id = column('id', 'int4', { sqlType: 'integer', castType: 'integer', notNull: true });
  return targetTable(name, [id], { primaryKey: ['id'], uniqueKeys: [['id']] });
}

/** A catalog that knows only the given tables, and records what it was asked. */
function catalog(names: string[]) {
  const asked: string[] = [];
  const tables = new Map(names.map((n) => [n, target(n)]));
  const fake = { find: async (name: string) => (asked.push(name), tables.get(name) ?? null) };
  return { catalog: fake as unknown as CatalogService, asked };
}

/** Grants of clients that may write every target. */
const everyone: Grants = { mayWrite: () => true };

let nextId = 1;
function insert(targetName: string, values: RowValues): ClaimedOperation {
  return claimed(target(targetName), { id: String(nextId++), type: 'insert', values, key: null, conflictKey: null });
}

describe('ChunkPlanner', () => {
  it('plans each target separately, looking each up once', async () => {
    const { catalog: fake, asked } = catalog(['public.a', 'public.b']);
    const processor = new ChunkPlanner(fake, loadConfig({}));
    const chunk = [insert('public.a', { id: 1 }), insert('public.b', { id: 1 }), insert('public.a', { id: 2 })];
    const { statements, filtered } = await processor.plan(chunk, everyone);
    assert.deepEqual(filtered, []);
    assert.deepEqual(
      statements.map((s) => [s.table.name, s.operations.map((o) => o.id)]),
      [
        ['public.a', [chunk[0].id, chunk[2].id]],
        ['public.b', [chunk[1].id]],
      ],
    );
    assert.deepEqual(asked, ['public.a', 'public.b']);
  });

  it('fails the operations of a table that no longer exists with 42P01, without a statement', async () => {
    const { catalog: fake } = catalog(['public.a']);
    const processor = new ChunkPlanner(fake, loadConfig({}));
    const chunk = [insert('public.gone', { id: 1 }), insert('public.a', { id: 1 }), insert('public.gone', { id: 2 })];
    const { statements, filtered } = await processor.plan(chunk, everyone);
    assert.deepEqual(
      statements.map((s) => s.table.name),
      ['public.a'],
    );
    assert.deepEqual(filtered, [
      {
        operation: chunk[0],
        status: 'FAILED',
        rowsAffected: null,
        error: { code: '42P01', message: 'relation "public.gone" does not exist' },
      },
      {
        operation: chunk[2],
        status: 'FAILED',
        rowsAffected: null,
        error: { code: '42P01', message: 'relation "public.gone" does not exist' },
      },
    ]);
  });

  it('refuses with FORBIDDEN, without a statement, what a client may no longer write', async () => {
    const { catalog: fake } = catalog(['public.a', 'public.b']);
    const processor = new ChunkPlanner(fake, loadConfig({}));
    const chunk = [insert('public.a', { id: 1 }), insert('public.b', { id: 1 }), insert('public.a', { id: 2 })];
    chunk[2].clientId = 'revoked';
    const grants: Grants = { mayWrite: (clientId, target) => clientId !== 'revoked' && target === 'public.a' };
    const { statements, filtered } = await processor.plan(chunk, grants);
    assert.deepEqual(
      statements.map((s) => [s.table.name, s.operations.map((o) => o.id)]),
      [['public.a', [chunk[0].id]]],
    );
    assert.deepEqual(
      filtered.map((f) => [f.operation.id, f.status, f.error?.code]),
      [
        [chunk[2].id, 'FAILED', 'FORBIDDEN'],
        [chunk[1].id, 'FAILED', 'FORBIDDEN'],
      ],
    );
  });

  it('splits statements at BATCH_STATEMENT_MAX_ROWS', async () => {
    const { catalog: fake } = catalog(['public.a']);
    const processor = new ChunkPlanner(fake, loadConfig({ BATCH_STATEMENT_MAX_ROWS: '2' }));
    const chunk = [1, 2, 3, 4, 5].map((id) => insert('public.a', { id }));
    const { statements } = await processor.plan(chunk, everyone);
    assert.deepEqual(
      statements.map((s) => s.operations.length),
      [2, 2, 1],
    );
  });
});
