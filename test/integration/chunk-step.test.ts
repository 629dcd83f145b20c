import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import type { ICreateBatchOperationRequest, IOperationsSettledEvent } from '../../src/interfaces/operation.interfaces';
import { ChunkService } from '../../src/services/queue-views/chunk.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { insertStatement } from '../../src/services/engine/target-sql';
import { createTestApp, TestApp } from '../support/app-context';
import { claimedId } from '../support/claimed';
import { messageText, SETTLED_MESSAGE_COLUMNS, SettledMessageColumns } from '../../src/services/outbox/settled-events';

interface PlanNode {
  'Node Type': string;
  Plans?: PlanNode[];
}

/** The outbox's notifications, oldest first, each with its text made as the relay makes it (`where` over `o`, a row). */
async function outboxMessages<T = IOperationsSettledEvent>(
  db: TestApp['db'],
  where = 'true',
  params: unknown[] = [],
): Promise<{ routing_key: string; payload: T }[]> {
  const rows = await db.query<{ routing_key: string } & SettledMessageColumns>(
    `SELECT routing_key, ${SETTLED_MESSAGE_COLUMNS('o')} FROM batch.outbox o WHERE ${where} ORDER BY id`,
    params,
  );
  return rows.map((row) => ({ routing_key: row.routing_key, payload: JSON.parse(messageText(row)) as T }));
}

describe('chunk step (real PostgreSQL)', () => {
  let t: TestApp;
  let operations: OperationService;
  let step: ChunkStep;
  let billing: AuthenticatedClient;
  let shipping: AuthenticatedClient;

  before(async () => {
    t = await createTestApp({ BATCH_PROCESS_OPERATION_LIMIT: '100' });
    operations = t.get(OperationService);
    step = t.get(ChunkStep);
    billing = await t.client('billing');
    shipping = await t.client('shipping');
  });
  after(() => t.close());

  beforeEach(async () => {
    await t.db.query(`DROP TABLE IF EXISTS public.items, public.parents, public.children, public.hosts`);
    await t.db.query(`CREATE TABLE public.items (
      id integer PRIMARY KEY, sku varchar(10) UNIQUE, qty integer NOT NULL DEFAULT 0 CHECK (qty >= 0), note text, seq bigserial)`);
    await t.db.query(
      `TRUNCATE batch.operations, batch.streams, batch.stream_runs, batch.deferred, batch.outcomes; DELETE FROM batch.outbox`,
    );
  });

  const insert = (values: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    target: 'items',
    type: 'insert' as const,
    values: values as never,
    ...extra,
  });

  /** How many statements a chunk's steps ran, as their exit messages say. */
  async function statementsOf(executionId: string): Promise<number> {
    const steps = await t.db.query<{ exit_message: string | null }>(
      'SELECT exit_message FROM batch.chunk_steps WHERE chunk_id = $1',
      [executionId],
    );
    return steps.reduce((sum, s) => sum + Number(/\((\d+) statements\)/.exec(s.exit_message ?? '')?.[1] ?? 1), 0);
  }

  async function statusOf(id: string) {
    return (
      await t.db.query<{
        status: string;
        rows_affected: number | null;
        error_code: string | null;
        chunk_id: string | null;
      }>('SELECT status, rows_affected, error_code, chunk_id FROM batch.operation_states WHERE id = $1', [id])
    )[0];
  }

  it("reads a run of inserts by one range of the primary key in order of id, with no sort: a backlog's statement", async () => {
    const created = await operations.createMany(
      billing,
      Array.from({ length: 1000 }, (_, i) => insert({ id: 1000 - i, sku: `s${i}` })),
    );
    const table = (await t.get(CatalogService).find('items'))!;
    const plan = { table, type: 'insert' as const, columns: ['id', 'sku'], keyColumns: null };
    const statement = insertStatement(table, { ...plan, operations: created.map(({ id }) => claimedId(id)) });
    await t.db.query('ANALYZE batch.operations');
    const [explained] = await t.db.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `EXPLAIN (FORMAT JSON) ${statement.sql}`,
      statement.params,
    );
    const nodes = (node: PlanNode): string[] => [node['Node Type'], ...(node.Plans ?? []).flatMap(nodes)];
    assert.deepEqual(nodes(explained['QUERY PLAN'][0].Plan), ['ModifyTable', 'Subquery Scan', 'Index Scan']);
    // and in the order of application: the serial drawn in order of the operations' ids
    await t.db.query(statement.sql, statement.params);
    const rows = await t.db.query<{ id: number }>('SELECT id FROM public.items ORDER BY seq');
    assert.deepEqual(
      rows.map((row) => row.id),
      Array.from({ length: 1000 }, (_, i) => 1000 - i),
    );
  });

  it('applies a chunk of inserts as one statement and records outcomes, execution, steps and outbox', async () => {
    const created = await operations.createMany(
      billing,
      Array.from({ length: 50 }, (_, i) => insert({ id: i + 1, sku: `s${i + 1}`, qty: i })),
    );
    const result = await step.execute();
    assert.equal(result.read, 50);
    const rows = await t.db.query<{ id: number; qty: number }>('SELECT id, qty FROM public.items ORDER BY id');
    assert.equal(rows.length, 50);
    assert.deepEqual(rows[49], { id: 50, qty: 49 });
    for (const { id } of created)
      assert.deepEqual(await statusOf(id), {
        status: 'COMPLETED',
        rows_affected: 1,
        error_code: null,
        chunk_id: result.chunkId,
      });
    const [execution] = await t.db.query<Record<string, number | string>>('SELECT * FROM batch.chunks WHERE id = $1', [
      result.chunkId,
    ]);
    assert.equal(execution.status, 'COMPLETED');
    assert.equal(execution.read_count, 50);
    assert.equal(execution.write_count, 50);
    assert.equal(execution.write_skip_count, 0);
    assert.equal(execution.commit_count, 1);
    const steps = await t.db.query<Record<string, number | string>>(
      'SELECT * FROM batch.chunk_steps WHERE chunk_id = $1',
      [result.chunkId],
    );
    assert.equal(steps.length, 1, 'one statement for the whole chunk');
    assert.equal(steps[0].write_count, 50);
    const outbox = await outboxMessages(t.db);
    assert.equal(outbox.length, 1);
    assert.equal(outbox[0].routing_key, 'operations.settled.billing');
    assert.equal(outbox[0].payload.executionId, result.chunkId);
    assert.deepEqual(
      outbox[0].payload.operations.map((o) => o.id),
      created.map((c) => c.id),
    );
    assert.equal((await step.execute()).read, 0, 'nothing is applied twice');
  });

  it('falls back to one-by-one when a statement fails: the failing operation is FAILED, the rest COMPLETED', async () => {
    await t.db.query(`INSERT INTO public.items (id, sku) VALUES (1000, 'taken')`);
    const created = await operations.createMany(billing, [
      insert({ id: 1, sku: 'a', qty: 1 }),
      insert({ id: 2, sku: 'taken', qty: 1 }), // unique violation on sku
      insert({ id: 3, sku: 'c', qty: -1 }), // check violation
      insert({ id: 1, sku: 'd', qty: 1 }), // duplicate primary key of the first operation
      insert({ id: 5, sku: 'e', qty: 1 }),
    ]);
    const result = await step.execute();
    const statuses = await Promise.all(created.map((c) => statusOf(c.id)));
    assert.deepEqual(
      statuses.map((s) => [s.status, s.error_code, s.rows_affected]),
      [
        ['COMPLETED', null, 1],
        ['FAILED', '23505', null],
        ['FAILED', '23514', null],
        ['FAILED', '23505', null],
        ['COMPLETED', null, 1],
      ],
    );
    const [failed] = await t.db.query<{ error_message: string }>(
      'SELECT error_message FROM batch.operation_states WHERE id = $1',
      [created[1].id],
    );
    assert.match(failed.error_message, /duplicate key value violates unique constraint/);
    assert.deepEqual(
      (await t.db.query('SELECT id, sku FROM public.items ORDER BY id')).map((r) => [r.id, r.sku]),
      [
        [1, 'a'],
        [5, 'e'],
        [1000, 'taken'],
      ],
    );
    const [execution] = await t.db.query<Record<string, number | string>>('SELECT * FROM batch.chunks WHERE id = $1', [
      result.chunkId,
    ]);
    assert.equal(execution.write_count, 2);
    assert.equal(execution.write_skip_count, 3);
    assert.equal(execution.rollback_count, 1, 'one statement for the run of inserts, then one at a time');
    assert.match(String(execution.exit_message), /3 of 5 operations failed/);
  });

  it('finds one bad operation among 1,000 in halves, in ~2 log2(1,000) statements, applying the rest in order', async () => {
    const large = await t.withConfig({ BATCH_PROCESS_OPERATION_LIMIT: '1000' });
    try {
      await t.db.query(`INSERT INTO public.items (id, sku) VALUES (5000, 'taken')`);
      const created = await operations.createMany(
        billing,
        Array.from({ length: 1000 }, (_, i) => insert({ id: i + 1, sku: i === 699 ? 'taken' : `s${i + 1}` })),
      );
      const { read, chunkId: executionId } = await large.get(ChunkStep).execute();
      assert.equal(read, 1000);
      assert.ok((await statementsOf(executionId!)) <= 1 + 2 * Math.ceil(Math.log2(1000)));
      const failed = await t.db.query<{ id: string; error_code: string }>(
        `SELECT id, error_code FROM batch.operation_states WHERE id = ANY ($1::bigint[]) AND status <> 'COMPLETED'`,
        [created.map((c) => c.id)],
      );
      assert.deepEqual(failed, [{ id: created[699].id, error_code: '23505' }]);
      const applied = await t.db.query<{ id: number }>(`SELECT id FROM public.items WHERE id < 5000 ORDER BY seq`);
      assert.deepEqual(
        applied.map((r) => r.id),
        Array.from({ length: 1000 }, (_, i) => i + 1).filter((id) => id !== 700),
        'in order of id, all but the bad one',
      );
    } finally {
      await large.close();
    }
  });

  it('applies a statement whose operations mostly fail one at a time, not in halves of halves', async () => {
    const large = await t.withConfig({ BATCH_PROCESS_OPERATION_LIMIT: '1000' });
    try {
      const good = new Set([3, 500, 501, 998]);
      await t.db.query(`INSERT INTO public.items (id) SELECT g FROM generate_series(1, 1000) g WHERE g <> ALL ($1)`, [
        [...good],
      ]);
      await operations.createMany(
        billing,
        Array.from({ length: 1000 }, (_, i) => insert({ id: i + 1, note: 'new' })),
      );
      const { chunkId: executionId } = await large.get(ChunkStep).execute();
      const statements = await statementsOf(executionId!);
      assert.ok(statements <= 1000 + 2 * Math.ceil(Math.log2(1000)), `${statements} statements`);
      assert.deepEqual(
        (await t.db.query<{ id: number }>(`SELECT id FROM public.items WHERE note = 'new' ORDER BY id`)).map(
          (r) => r.id,
        ),
        [...good],
      );
    } finally {
      await large.close();
    }
  });

  it('holds a bounded number of subtransactions and locks however many operations of a chunk fail', async () => {
    const large = await t.withConfig({ BATCH_PROCESS_OPERATION_LIMIT: '50000' });
    const watcher = await t.db.dataSource.createQueryRunner();
    try {
      await t.db.query(`INSERT INTO public.items (id) SELECT generate_series(1, 10000)`);
      // 9,000 failing inserts of one shape (one statement, applied in parts), then 1,000 of two shapes in turns (a
      // statement each, each failing whole)
      const created = [];
      for (let from = 0; from < 10_000; from += 1000)
        created.push(
          ...(await operations.createMany(
            billing,
            Array.from({ length: 1000 }, (_, i) =>
              insert(from + i < 9000 || i % 2 ? { id: from + i + 1 } : { id: from + i + 1, note: 'x' }),
            ),
          )),
        );
      const other = await operations.create(shipping, insert({ id: 20_000 }));
      let most = 0;
      let watching = true;
      const watched = (async () => {
        while (watching) {
          const [{ n }] = (await watcher.query(
            `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()`,
          )) as { n: number }[];
          most = Math.max(most, n);
        }
      })();
      const result = await large
        .get(ChunkStep)
        .execute(50_000)
        .finally(() => (watching = false));
      await watched;
      assert.equal(result.read, 10_001);
      // a lock per open subtransaction would be thousands here; the relations a chunk reads and writes (tables and
      // their indexes, of the service and the targets) are about a hundred
      assert.ok(most < 200, `${most} locks held at most`);
      assert.equal((await statusOf(created[0].id)).error_code, '23505');
      assert.equal(
        await t.db
          .query(`SELECT count(*)::int AS n FROM batch.operation_states WHERE status = 'FAILED'`)
          .then(([row]) => row.n as number),
        10_000,
      );
      assert.equal((await statusOf(other.id)).status, 'COMPLETED');
    } finally {
      await watcher.release();
      await large.close();
    }
  });

  it('applies in order of application: priority first, then id; serial defaults follow that order', async () => {
    const low = await operations.create(billing, insert({ id: 1, note: 'low' }, { priority: -5 }));
    const normal = await operations.create(billing, insert({ id: 2, note: 'normal' }));
    const high = await operations.create(billing, insert({ id: 3, note: 'high' }, { priority: 10 }));
    await step.execute();
    const rows = await t.db.query<{ id: number; seq: string }>('SELECT id, seq FROM public.items ORDER BY seq');
    assert.deepEqual(
      rows.map((r) => r.id),
      [3, 2, 1],
    );
    for (const c of [low, normal, high]) assert.equal((await statusOf(c.id)).status, 'COMPLETED');
  });

  it('keeps the order of inserts with different column sets', async () => {
    await operations.createMany(billing, [insert({ id: 1 }), insert({ id: 2, note: 'x' }), insert({ id: 3 })]);
    const { chunkId: executionId } = await step.execute();
    assert.deepEqual(
      (await t.db.query('SELECT id FROM public.items ORDER BY seq')).map((r) => r.id),
      [1, 2, 3],
    );
    assert.equal((await t.db.query('SELECT 1 FROM batch.chunk_steps WHERE chunk_id = $1', [executionId])).length, 3);
  });

  it('applies a stream of rows each inserted, incremented twice and updated as rounds: a statement per round and type', async () => {
    const rows = 100;
    const created = await operations.createMany(
      billing,
      Array.from({ length: rows }, (_, i): ICreateBatchOperationRequest[] => [
        insert({ id: i + 1, qty: i }),
        { target: 'items', type: 'increment' as const, key: { id: i + 1 }, values: { qty: 1 } },
        { target: 'items', type: 'increment' as const, key: { id: i + 1 }, values: { qty: 2 } },
        { target: 'items', type: 'update' as const, key: { id: i + 1 }, values: { note: `n${i + 1}` } },
      ]).flat(),
    );
    const { chunkId, read } = await step.execute(4 * rows);
    assert.equal(read, 4 * rows);
    const table = await t.db.query<{ id: number; qty: number; note: string }>(
      'SELECT id, qty, note FROM public.items ORDER BY seq',
    );
    assert.deepEqual(
      table,
      Array.from({ length: rows }, (_, i) => ({ id: i + 1, qty: i + 3, note: `n${i + 1}` })),
    );
    for (const { id } of created) assert.equal((await statusOf(id)).rows_affected, 1);
    // rounds from the start: the inserts, the first increments, the second ones, the updates
    assert.equal(await statementsOf(chunkId!), 4);
  });

  it('applies updates and increments of other rows, alternating, as two statements, not one each', async () => {
    await t.db.query(`INSERT INTO public.items (id, qty) SELECT g, 0 FROM generate_series(1, 100) g`);
    await operations.createMany(
      billing,
      Array.from({ length: 100 }, (_, i): ICreateBatchOperationRequest =>
        i % 2
          ? { target: 'items', type: 'increment', key: { id: i + 1 }, values: { qty: 2 } }
          : { target: 'items', type: 'update', key: { id: i + 1 }, values: { note: 'u' } },
      ),
    );
    const { chunkId } = await step.execute();
    assert.equal(await statementsOf(chunkId!), 2);
    assert.deepEqual(await t.db.query(`SELECT count(*)::int AS n FROM public.items WHERE qty = 2 OR note = 'u'`), [
      { n: 100 },
    ]);
  });

  it('keeps inserts in order in rounds where a row is inserted after another operation on it (serial defaults)', async () => {
    await operations.createMany(billing, [
      insert({ id: 3 }),
      { target: 'items', type: 'update' as const, key: { id: 2 }, values: { note: 'none yet' } },
      insert({ id: 2 }),
      insert({ id: 1 }),
    ]);
    await step.execute();
    assert.deepEqual(
      (await t.db.query('SELECT id FROM public.items ORDER BY seq')).map((r) => r.id),
      [3, 2, 1],
    );
  });

  it('waits for notBefore without holding back later operations', async () => {
    const later = await operations.create(
      billing,
      insert({ id: 1 }, { notBefore: new Date(Date.now() + 60_000).toISOString() }),
    );
    const now = await operations.create(billing, insert({ id: 2 }));
    assert.equal((await step.execute()).read, 1);
    assert.equal((await statusOf(later.id)).status, 'PENDING');
    assert.equal((await statusOf(now.id)).status, 'COMPLETED');
    await t.db.query(`UPDATE batch.deferred SET due_at = now() - interval '1 second' WHERE id = $1`, [later.id]);
    assert.equal((await step.execute()).read, 1);
    assert.equal((await statusOf(later.id)).status, 'COMPLETED');
  });

  it('writes one notification per client, and claims no more than the chunk limit', async () => {
    await operations.createMany(
      billing,
      Array.from({ length: 70 }, (_, i) => insert({ id: i + 1 })),
    );
    await operations.createMany(
      shipping,
      Array.from({ length: 70 }, (_, i) => insert({ id: i + 101 })),
    );
    assert.equal((await step.execute()).read, 100);
    assert.equal((await step.execute()).read, 40);
    const counted = new Map<string, number>();
    for (const { routing_key, payload } of await outboxMessages(t.db))
      counted.set(routing_key, (counted.get(routing_key) ?? 0) + payload.operations.length);
    const outbox = [...counted].sort().map(([routing_key, n]) => ({ routing_key, n }));
    assert.deepEqual(outbox, [
      { routing_key: 'operations.settled.billing', n: 70 },
      { routing_key: 'operations.settled.shipping', n: 70 },
    ]);
  });

  it('fails the operations of a target that was dropped after they were created', async () => {
    const created = await operations.create(billing, insert({ id: 1 }));
    await t.db.query('DROP TABLE public.items');
    await step.execute();
    assert.deepEqual(await statusOf(created.id), {
      status: 'FAILED',
      rows_affected: null,
      error_code: '42P01',
      chunk_id: (await statusOf(created.id)).chunk_id,
    });
  });

  it('fails a value the database refuses at apply time (a cast the catalog could not foresee)', async () => {
    await t.db.query(`CREATE TABLE public.parents (id int PRIMARY KEY)`);
    await t.db.query(`CREATE TABLE public.children (id int PRIMARY KEY, parent_id int REFERENCES public.parents (id))`);
    const orphan = await operations.create(billing, {
      target: 'children',
      type: 'insert',
      values: { id: 1, parent_id: 7 },
    });
    await step.execute();
    assert.equal((await statusOf(orphan.id)).error_code, '23503');
  });

  it("shows the clients of a chunk what is safe for all of them: no client's value in execution or step messages", async () => {
    await t.db.query(`CREATE TABLE public.hosts (id int PRIMARY KEY, addr inet)`);
    const secret = await operations.create(billing, {
      target: 'hosts',
      type: 'insert',
      values: { id: 1, addr: 'BOB-SECRET-1' },
    });
    const fine = await operations.create(shipping, {
      target: 'hosts',
      type: 'insert',
      values: { id: 2, addr: '10.0.0.1' },
    });
    const { chunkId: executionId } = await step.execute();
    assert.equal((await statusOf(fine.id)).chunk_id, executionId, 'both settled by one chunk');
    const [own] = await t.db.query<{ error_code: string; error_message: string }>(
      'SELECT error_code, error_message FROM batch.operation_states WHERE id = $1',
      [secret.id],
    );
    assert.deepEqual(
      [own.error_code, own.error_message.includes('BOB-SECRET-1')],
      ['22P02', true],
      "its owner reads the database's message",
    );
    const seen = await t.get(ChunkService).get(shipping, executionId!);
    const messages = [seen.exitMessage, ...seen.steps!.map((s) => s.exitMessage)].join(' | ');
    assert.match(messages, /statement failed with SQLSTATE 22P02; applied in parts down to the failing operations/);
    assert.doesNotMatch(messages, /SECRET/);
  });

  describe('the settled notification (written with the chunk, its text made when it is sent)', () => {
    const event = async (clientName: string) =>
      (await outboxMessages(t.db, 'routing_key = $1', [`operations.settled.${clientName}`])).at(-1)!.payload;

    it('is the operations.settled message of docs/api.md, field for field', async () => {
      await t.db.query(`INSERT INTO public.items (id, sku) VALUES (1000, 'taken')`);
      const [ok, dup] = await operations.createMany(billing, [
        insert({ id: 1, sku: 'a' }, { idempotencyKey: 'r-1 "ü\\', label: 'RÉSERVE 🎫' }),
        insert({ id: 2, sku: 'taken' }),
      ]);
      const { chunkId: executionId } = await step.execute();
      const [{ ended }] = await t.db.query<{ ended: Date }>(
        'SELECT ended_at AS ended FROM batch.chunks WHERE id = $1',
        [executionId],
      );
      assert.deepEqual(await event('billing'), {
        type: 'operations.settled',
        client: 'billing',
        executionId,
        settledAt: ended.toISOString(),
        operations: [
          {
            id: ok.id,
            status: 'COMPLETED',
            rowsAffected: 1,
            error: null,
            target: 'public.items',
            type: 'insert',
            idempotencyKey: 'r-1 "ü\\',
            label: 'RÉSERVE 🎫',
          },
          {
            id: dup.id,
            status: 'FAILED',
            rowsAffected: null,
            error: { code: '23505', message: 'duplicate key value violates unique constraint "items_sku_key"' },
            target: 'public.items',
            type: 'insert',
            idempotencyKey: null,
            label: null,
          },
        ],
      });
    });

    it('orders operations by numeric id, beyond the safe integer range too', async () => {
      await t.db.query(`SELECT setval('batch.operations_id_seq', 9007199254740990)`);
      const created = await operations.createMany(
        billing,
        Array.from({ length: 5 }, (_, i) => insert({ id: i + 1 })),
      );
      await step.execute();
      assert.deepEqual(
        (await event('billing')).operations.map((o) => o.id),
        created.map((c) => c.id),
      );
      assert.deepEqual(created.map((c) => c.id).slice(2, 4), ['9007199254740993', '9007199254740994']);
    });

    it('notifies a retried operation again when it settles anew', async () => {
      await t.db.query(`INSERT INTO public.items (id, sku) VALUES (7, 'held')`);
      const [refused] = await operations.createMany(billing, [insert({ id: 8, sku: 'held' })]);
      await step.execute();
      assert.deepEqual(
        (await event('billing')).operations.map((o) => [o.id, o.status, o.error?.code]),
        [[refused.id, 'FAILED', '23505']],
      );
      await t.db.query(`DELETE FROM public.items WHERE id = 7`);
      await operations.retry(billing, refused.id);
      await step.execute();
      assert.deepEqual(
        (await event('billing')).operations.map((o) => [o.id, o.status, o.rowsAffected, o.error]),
        [[refused.id, 'COMPLETED', 1, null]],
      );
    });

    it('says how it was settled even when an operation it holds is retried before it was published', async () => {
      const [failedOne] = await operations.createMany(billing, [insert({ id: 1, qty: -1 })]);
      await step.execute();
      await operations.retry(billing, failedOne.id);
      const row = (await outboxMessages(t.db)).at(-1)!;
      assert.deepEqual(
        row.payload!.operations.map((o) => [o.id, o.status, o.error?.code]),
        [[failedOne.id, 'FAILED', '23514']],
      );
    });
  });
});
