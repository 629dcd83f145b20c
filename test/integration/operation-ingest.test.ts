import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { BatchError } from '../../src/services/batch-error';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { MAIN } from '../../src/services/storage/named-databases';
import { createTestApp, TestApp } from '../support/app-context';

async function rejects(promise: Promise<unknown>, code: string, message?: RegExp): Promise<BatchError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BatchError, `expected a BatchError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

describe('operation ingest (real PostgreSQL)', () => {
  let t: TestApp;
  let operations: OperationService;
  let billing: AuthenticatedClient;
  let other: AuthenticatedClient;

  before(async () => {
    t = await createTestApp();
    operations = t.get(OperationService);
    await t.db.query(
      `CREATE TABLE public.accounts (id int PRIMARY KEY, email varchar(20) NOT NULL UNIQUE, balance numeric(8,2) DEFAULT 0, opened date)`,
    );
    await t.db.query(`CREATE TABLE public.secrets (id int PRIMARY KEY)`);
    billing = await t.client('billing', ['accounts']);
    other = await t.client('other', ['accounts']);
  });
  after(() => t.close());
  beforeEach(() =>
    t.db.query(
      'TRUNCATE batch.operations, batch.streams, batch.stream_runs, batch.deferred, batch.outcomes, batch.settled_runs',
    ),
  );

  const count = async () =>
    Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM batch.operations'))[0].n);
  const account = (id: number, extra: Record<string, unknown> = {}) => ({
    target: 'accounts',
    type: 'insert' as const,
    values: { id, email: `a${id}@x`, ...extra } as never,
  });

  it('stores an operation with every field and answers with its id', async () => {
    const notBefore = new Date(Date.now() + 1000).toISOString();
    const created = await operations.create(billing, {
      ...account(1),
      idempotencyKey: 'k-1',
      priority: 7,
      notBefore,
      label: 'OPEN',
    });
    assert.match(created.id, /^\d+$/);
    assert.equal(created.status, 'PENDING');
    assert.equal(created.duplicate, false);
    const stored = await operations.get(billing, created.id);
    assert.equal(stored.target, 'public.accounts');
    assert.deepEqual(stored.values, { id: 1, email: 'a1@x' });
    assert.equal(stored.idempotencyKey, 'k-1');
    assert.equal(stored.priority, 7);
    assert.equal(stored.notBefore, notBefore);
    assert.equal(stored.label, 'OPEN');
    assert.equal(stored.error, null);
  });

  it('gives increasing ids in request order and stores a bulk request all at once', async () => {
    const created = await operations.createMany(
      billing,
      Array.from({ length: 20 }, (_, i) => account(i)),
    );
    const ids = created.map((c) => BigInt(c.id));
    assert.deepEqual(
      [...ids].sort((a, b) => (a < b ? -1 : 1)),
      ids,
    );
    assert.equal(await count(), 20);
  });

  it('stores nothing of a bulk request with one bad operation', async () => {
    const error = await rejects(
      operations.createMany(billing, [account(1), account(2, { nope: 1 }), account(3)]),
      'UNKNOWN_COLUMN',
      /operations\[1\]/,
    );
    assert.equal((error.details as { index: number }).index, 1);
    assert.equal(await count(), 0);
  });

  it('returns the first operation for a repeated idempotency key, also within one request', async () => {
    const first = await operations.create(billing, { ...account(1), idempotencyKey: 'same' });
    const again = await operations.create(billing, { ...account(2), idempotencyKey: 'same' });
    assert.deepEqual({ ...again, duplicate: false }, first);
    assert.equal(again.duplicate, true);
    const both = await operations.createMany(billing, [
      { ...account(3), idempotencyKey: 'x' },
      { ...account(4), idempotencyKey: 'x' },
    ]);
    assert.equal(both[1].id, both[0].id);
    assert.equal(both[1].duplicate, true);
    const otherClient = await operations.create(other, { ...account(5), idempotencyKey: 'same' });
    assert.notEqual(otherClient.id, first.id, 'idempotency keys are per client');
    assert.equal(await count(), 3);
  });

  it('stores nothing new when the same RPC request is delivered again', async () => {
    const first = await operations.createMany(billing, [account(1), account(2)], 'request-42');
    const redelivered = await operations.createMany(billing, [account(1), account(2)], 'request-42');
    assert.deepEqual(
      redelivered.map((r) => r.id),
      first.map((r) => r.id),
    );
    assert.ok(redelivered.every((r) => r.duplicate));
    assert.equal(await count(), 2);
  });

  it('answers a request delivered twice at once with what one of them stored, in request order', async () => {
    const request = [
      { ...account(1), idempotencyKey: 'k' },
      account(2),
      { ...account(3), idempotencyKey: 'k' }, // the same key as the first: stored once
      account(4),
    ];
    const answers = await Promise.all([
      operations.createMany(billing, request, 'request-7'),
      operations.createMany(billing, request, 'request-7'),
    ]);
    // either delivery may reach the group commit first: it stores, the other finds what it stored
    const [one, two] = answers[0].some((r) => !r.duplicate) ? answers : [answers[1], answers[0]];
    assert.deepEqual(
      two.map((r) => r.id),
      one.map((r) => r.id),
    );
    assert.equal(one[2].id, one[0].id);
    assert.deepEqual(
      one.map((r) => r.duplicate),
      [false, false, true, false],
    );
    assert.ok(two.every((r) => r.duplicate));
    assert.equal(await count(), 3);
    const another = await operations.createMany(other, [account(5)], 'request-7');
    assert.equal(another[0].duplicate, false, "requests are each client's own");
  });

  it('rejects what the catalog refuses, with the contract error code, storing nothing', async () => {
    await rejects(operations.create(billing, { target: 'nope', type: 'insert', values: { id: 1 } }), 'UNKNOWN_TARGET');
    await rejects(
      operations.create(billing, { target: 'batch.operations', type: 'insert', values: { id: 1 } }),
      'UNKNOWN_TARGET',
    );
    await rejects(operations.create(billing, { target: 'secrets', type: 'insert', values: { id: 1 } }), 'FORBIDDEN');
    await rejects(operations.create(billing, account(1, { Email: 'x' })), 'UNKNOWN_COLUMN', /Email/);
    await rejects(
      operations.create(billing, { target: 'accounts', type: 'insert', values: { id: 1 } }),
      'VALIDATION_FAILED',
      /email.*required/,
    );
    await rejects(operations.create(billing, account(1, { email: null })), 'VALIDATION_FAILED', /cannot be null/);
    await rejects(
      operations.create(billing, account(1, { email: 'x'.repeat(21) })),
      'VALIDATION_FAILED',
      /longer than 20/,
    );
    await rejects(operations.create(billing, account(1, { balance: 1_000_000 })), 'VALIDATION_FAILED', /out of range/);
    await rejects(operations.create(billing, account(1, { opened: '2026-02-30' })), 'VALIDATION_FAILED', /date/);
    await rejects(operations.create(billing, account(2 ** 31)), 'VALIDATION_FAILED', /out of range/);
    await rejects(
      operations.create(billing, { target: 'accounts', type: 'delete', key: { email: 'a@x', id: 1 } }),
      'VALIDATION_FAILED',
      /primary key or one unique key/,
    );
    assert.equal(await count(), 0);
  });

  it('finds a target table and a column created after start', async () => {
    await rejects(
      operations.create(billing, { target: 'accounts', type: 'insert', values: { id: 1, email: 'a@x', tier: 'gold' } }),
      'UNKNOWN_COLUMN',
    );
    await t.db.query(`ALTER TABLE public.accounts ADD COLUMN tier text`);
    await operations.create(billing, {
      target: 'accounts',
      type: 'insert',
      values: { id: 1, email: 'a@x', tier: 'gold' },
    });
    // one request: its first operation finds the target as cached, its second names a column added since
    await t.db.query(`ALTER TABLE public.accounts ADD COLUMN region text`);
    await operations.createMany(billing, [
      { target: 'accounts', type: 'insert', values: { id: 2, email: 'b@x' } },
      { target: 'accounts', type: 'insert', values: { id: 3, email: 'c@x', region: 'eu' } },
    ]);
    const admin = await t.client('admin2', ['*']);
    await t.db.query(`CREATE TABLE public.late (id int PRIMARY KEY)`);
    await operations.create(admin, { target: 'late', type: 'insert', values: { id: 1 } });
    assert.equal(await count(), 4);
  });

  it('reads the whole catalog again for a miss only where the database now has what was missed', async () => {
    const catalog = t.get(CatalogService);
    let reloads = 0;
    const reload = catalog.reload.bind(catalog);
    catalog.reload = (database?: string) => ((reloads += 1), reload(database));
    try {
      const admin = await t.client('admin3', ['*']);
      await reload(MAIN); // fresh for BATCH_CATALOG_TTL (5 s): what follows takes milliseconds
      for (let i = 0; i < 5; i++) {
        await rejects(
          operations.create(admin, { target: 'ghost', type: 'insert', values: { id: 1 } }),
          'UNKNOWN_TARGET',
        );
        await rejects(operations.create(billing, account(1, { ghost: 1 })), 'UNKNOWN_COLUMN');
      }
      assert.equal(reloads, 0, 'ten misses of what is not there: no reload');
      await reload(MAIN);
      await t.db.query(`CREATE TABLE public.ghost (id int PRIMARY KEY)`);
      await t.db.query(`ALTER TABLE public.accounts ADD COLUMN ghost int`);
      await operations.create(admin, { target: 'ghost', type: 'insert', values: { id: 1 } });
      await operations.create(billing, account(1, { ghost: 1 }));
      assert.equal(reloads, 1, 'found once there: one read for the table, which finds the column too');
    } finally {
      catalog.reload = reload;
    }
  });

  it('cancels a pending operation once, and only its own client may', async () => {
    const created = await operations.create(billing, account(1));
    await rejects(operations.cancel(other, created.id), 'FORBIDDEN');
    const cancelled = await operations.cancel(billing, created.id);
    assert.equal(cancelled.status, 'CANCELLED');
    assert.ok(cancelled.settledAt);
    await rejects(operations.cancel(billing, created.id), 'CONFLICT', /CANCELLED/);
    await rejects(operations.get(billing, '999999999'), 'NOT_FOUND');
  });

  it('retries a FAILED operation (same id) and refuses to retry any other', async () => {
    const created = await operations.create(billing, account(1));
    await rejects(operations.retry(billing, created.id), 'CONFLICT');
    await t.db.query(
      `WITH claimed AS (SELECT id, client_id, target, priority FROM batch.operations WHERE id = $1),
       passed AS (UPDATE batch.streams s SET taken_through = c.id FROM claimed c WHERE s.target = c.target AND s.priority = c.priority)
       INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, error_code, error_message, settled_at)
       SELECT id, client_id, target, 'FAILED', 1, '23505', 'dup', now() FROM claimed`,
      [created.id],
    );
    const retried = await operations.retry(billing, created.id);
    assert.equal(retried.id, created.id);
    assert.equal(retried.status, 'PENDING');
    assert.equal(retried.error, null);
  });

  it('keeps every client an operation refers to: clients are revoked, never deleted', async () => {
    await operations.create(billing, account(2));
    for (const statement of [`DELETE FROM batch.clients WHERE id = ${billing.id}`, `TRUNCATE batch.clients CASCADE`]) {
      await assert.rejects(t.db.query(statement), /revoked \(revoked_at\), never deleted/, statement);
    }
    const [{ n }] = await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM batch.clients WHERE id = $1`, [
      billing.id,
    ]);
    assert.equal(Number(n), 1);
  });

  it("lists newest first with a keyset cursor, filtered, and only the client's own", async () => {
    await operations.createMany(
      billing,
      Array.from({ length: 5 }, (_, i) => ({ ...account(i), label: i % 2 ? 'odd' : 'even' })),
    );
    await operations.create(other, account(99));
    const page1 = await operations.list(billing, { limit: 2 });
    assert.equal(page1.items.length, 2);
    assert.ok(BigInt(page1.items[0].id) > BigInt(page1.items[1].id));
    const page2 = await operations.list(billing, { limit: 2, cursor: page1.nextCursor! });
    const page3 = await operations.list(billing, { limit: 2, cursor: page2.nextCursor! });
    assert.equal(page3.items.length, 1);
    assert.equal(page3.nextCursor, null);
    assert.equal((await operations.list(billing, { label: 'odd' })).items.length, 2);
    assert.equal((await operations.list(billing, { target: 'accounts', status: 'PENDING' })).items.length, 5);
    const both = await t.client('both', ['accounts', 'secrets']);
    await operations.createMany(both, [account(50), { target: 'secrets', type: 'insert', values: { id: 1 } }]);
    for (const target of ['accounts', 'secrets']) {
      const listed = await operations.list(both, { target });
      assert.deepEqual(
        listed.items.map((op) => op.target),
        [`public.${target}`],
      );
    }
  });

  it('lists each status wherever it is recorded (runs or rows), not walking a backlog that came after', async () => {
    const created = await operations.createMany(billing, [
      ...[1, 2, 3].map((id) => account(id)), // completed, in a run
      account(1), // failed: duplicate
      { target: 'accounts', type: 'update' as const, key: { id: 9 }, values: { balance: 1 } }, // completed, no row
      ...[4, 5].map((id) => account(id)), // completed, in a run
      account(6), // cancelled
    ]);
    const ids = created.map((c) => c.id);
    await operations.cancel(billing, ids[7]);
    await t.get(ChunkStep).execute();
    const pending = (
      await operations.createMany(
        billing,
        Array.from({ length: 20 }, (_, i) => account(100 + i)),
      )
    ).map((c) => c.id); // pending in their stream, newer than all of it
    const [scheduled] = await operations.createMany(billing, [
      { ...account(200), notBefore: new Date(Date.now() + 3_600_000).toISOString() },
    ]); // pending in the deferred set
    await operations.cancel(billing, pending[5]); // cancelled, still after its stream's position
    await operations.create(other, account(300)); // another client's
    await t.db.query('ANALYZE batch.operations');
    const listed = async (status: 'PENDING' | 'COMPLETED' | 'FAILED' | 'CANCELLED') => {
      const pages: string[][] = [];
      let cursor: string | undefined;
      do {
        const page = await operations.list(billing, { status, limit: 2, cursor });
        assert.ok(page.items.every((op) => op.status === status));
        pages.push(page.items.map((op) => op.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      return pages;
    };
    assert.deepEqual(await listed('COMPLETED'), [
      [ids[6], ids[5]],
      [ids[4], ids[2]],
      [ids[1], ids[0]],
    ]);
    assert.deepEqual(await listed('FAILED'), [[ids[3]]]);
    assert.deepEqual(await listed('CANCELLED'), [[pending[5], ids[7]]]);
    const newestFirst = [scheduled.id, ...pending.filter((_, i) => i !== 5).reverse()];
    assert.deepEqual(
      await listed('PENDING'),
      Array.from({ length: newestFirst.length / 2 }, (_, i) => newestFirst.slice(2 * i, 2 * i + 2)),
    );
    assert.equal((await operations.list(other, { status: 'COMPLETED' })).items.length, 0, 'only its own');
  });
});
