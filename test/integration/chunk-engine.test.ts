import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { ICreateBatchOperationRequest } from '../../src/interfaces/operation.interfaces';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import { createTestApp, TestApp } from '../support/app-context';

describe('chunk engine: every type in batches, policies, job repository (real PostgreSQL)', () => {
  let t: TestApp;
  let operations: OperationService;
  let step: ChunkStep;
  let client: AuthenticatedClient;

  before(async () => {
    t = await createTestApp({ BATCH_PROCESS_OPERATION_LIMIT: '1000' });
    operations = t.get(OperationService);
    step = t.get(ChunkStep);
    client = await t.client('engine');
  });
  after(() => t.close());

  /** AppConfig is read-only: a test that needs other engine settings runs a chunk step of its own on this database. */
  const others: TestApp[] = [];
  async function stepWith(env: Record<string, string>): Promise<ChunkStep> {
    const other = await t.withConfig(env);
    others.push(other);
    return other.get(ChunkStep);
  }
  afterEach(async () => {
    for (const other of others.splice(0)) await other.close();
  });

  beforeEach(async () => {
    await t.db.query(
      `DROP TABLE IF EXISTS public.stock, public.wide, public.flaky, public.deferred, public.flags, public.notes, public.hosts, public.tallies`,
    );
    await t.db.query(
      `CREATE TABLE public.stock (id int PRIMARY KEY, sku text NOT NULL UNIQUE, qty int NOT NULL DEFAULT 0 CHECK (qty >= 0), note text)`,
    );
    await t.db.query(`INSERT INTO public.stock SELECT g, 'sku' || g, 10 FROM generate_series(1, 200) g`);
    await t.db.query(
      `TRUNCATE batch.operations, batch.streams, batch.stream_runs, batch.deferred, batch.outcomes, batch.holds; DELETE FROM batch.chunks`,
    );
  });

  async function run(ops: ICreateBatchOperationRequest[]) {
    const created = await operations.createMany(client, ops);
    const { chunkId: executionId } = await step.execute();
    const steps = await t.db.query<{ name: string; read_count: number; write_count: number }>(
      'SELECT name, read_count, write_count FROM batch.chunk_steps WHERE chunk_id = $1 ORDER BY id',
      [executionId],
    );
    const outcomes = await t.db.query<{ status: string; rows_affected: number | null; error_code: string | null }>(
      'SELECT status, rows_affected, error_code FROM batch.operation_states WHERE id = ANY($1::bigint[]) ORDER BY id',
      [created.map((c) => c.id)],
    );
    return { executionId, steps, outcomes };
  }

  const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

  it('applies 200 updates, increments, upserts and deletes each as one statement', async () => {
    const updates = await run(
      range(200).map((id) => ({ target: 'stock', type: 'update' as const, key: { id }, values: { note: `n${id}` } })),
    );
    assert.equal(updates.steps.length, 1);
    assert.ok(updates.outcomes.every((o) => o.status === 'COMPLETED' && o.rows_affected === 1));

    const increments = await run(
      range(200).map((id) => ({
        target: 'stock',
        type: 'increment' as const,
        key: { sku: `sku${id}` },
        values: { qty: id },
      })),
    );
    assert.deepEqual(
      increments.steps.map((s) => s.name),
      ['increment public.stock (qty) by (sku)'],
    );
    assert.equal((await t.db.query<{ qty: number }>('SELECT qty FROM public.stock WHERE id = 7'))[0].qty, 17);

    const upserts = await run(
      range(250).map((id) => ({
        target: 'stock',
        type: 'upsert' as const,
        values: { id, sku: `sku${id}`, note: 'u' },
      })),
    );
    assert.equal(upserts.steps.length, 1);
    assert.equal(
      Number((await t.db.query<{ n: string }>(`SELECT count(*) AS n FROM public.stock WHERE note = 'u'`))[0].n),
      250,
    );

    const deletes = await run(
      [...range(100), 999].map((id) => ({ target: 'stock', type: 'delete' as const, key: { id } })),
    );
    assert.equal(deletes.steps.length, 1);
    assert.deepEqual(
      deletes.outcomes.at(-1),
      { status: 'COMPLETED', rows_affected: 0, error_code: null },
      'a delete that matches no row completes with 0',
    );
    assert.deepEqual(
      await t.db.query(`SELECT encode(no_rows, 'hex') AS no_rows FROM batch.settled_runs WHERE chunk_id = $1`, [
        deletes.executionId,
      ]),
      [{ no_rows: '00000000000000000000000010' }],
      'recorded in the run of the 101 deletes, its 101st operation marked; no outcome row',
    );
    assert.equal((await t.db.query('SELECT FROM batch.outcomes')).length, 0);
    assert.equal(Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM public.stock'))[0].n), 150);
  });

  it('runs deletes after one that missed a row in the form that tells each, at once, and bare again after none missed', async () => {
    const deletes = (ids: number[]) => ids.map((id) => ({ target: 'stock', type: 'delete' as const, key: { id } }));
    const affected = async (ids: number[]) => (await run(deletes(ids))).outcomes.map((o) => o.rows_affected);
    assert.deepEqual(await affected([1, 2, 999]), [1, 1, 0]); // bare, undone, then told
    assert.deepEqual(await affected([3, 998, 4, 3]), [1, 0, 1, 0]); // told at once (StatementApplier: the unit test)
    assert.deepEqual(await affected([5, 6]), [1, 1]); // told at once, missed none
    assert.deepEqual(await affected([7, 997]), [1, 0]); // bare again, undone, told
    assert.equal(Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM public.stock'))[0].n), 193);
  });

  it('fails an update or a delete whose value only the database can refuse, also when no row matches', async () => {
    await t.db.query(`CREATE TABLE public.hosts (id int PRIMARY KEY, addr inet UNIQUE)`); // empty
    const { outcomes } = await run([
      { target: 'hosts', type: 'update', key: { id: 1 }, values: { addr: 'bogus' } },
      { target: 'hosts', type: 'delete', key: { addr: 'bogus' } },
      { target: 'hosts', type: 'update', key: { id: 2 }, values: { addr: '10.0.0.1' } },
    ]);
    assert.deepEqual(
      outcomes.map((o) => [o.status, o.error_code]),
      [
        ['FAILED', '22P02'],
        ['FAILED', '22P02'],
        ['COMPLETED', null],
      ],
      'as one at a time: a one-row statement casts its values before its WHERE matches nothing',
    );
  });

  it('claims up to its byte budget, shared equally among the targets it reaches', async () => {
    await t.db.query(
      `CREATE TABLE public.flags (id int PRIMARY KEY, note text); CREATE TABLE public.notes (LIKE public.flags)`,
    );
    const note = 'x'.repeat(1000);
    const [{ bytes }] = await t.db.query<{ bytes: number }>(`SELECT pg_column_size($1::jsonb) AS bytes`, [
      JSON.stringify({ id: 1, note }),
    ]);
    const budgeted = await stepWith({ BATCH_CHUNK_MAX_BYTES: String(bytes * 10) });
    const created = await operations.createMany(client, [
      ...range(20).map((id) => ({ target: 'flags', type: 'insert' as const, values: { id, note } })),
      ...range(20).map((id) => ({ target: 'notes', type: 'insert' as const, values: { id, note } })),
    ]);
    const settledBy = async () =>
      (
        await t.db.query<{ target: string; n: number }>(
          `SELECT target, count(*)::int AS n FROM batch.operation_states WHERE id = ANY($1) AND status <> 'PENDING' GROUP BY 1 ORDER BY 1`,
          [created.map((c) => c.id)],
        )
      ).map((r) => [r.target, r.n]);

    assert.equal((await budgeted.execute()).read, 10, 'two targets, five operations of the budget each');
    assert.deepEqual(await settledBy(), [
      ['public.flags', 5],
      ['public.notes', 5],
    ]);
    await t.db.query(
      `UPDATE batch.streams SET taken_through = (SELECT max(id) FROM batch.operations) WHERE target = 'public.notes'`,
    );
    assert.equal((await budgeted.execute()).read, 10, 'one target, the whole budget');
  });

  it('applies an insert, two updates and a delete of one row in rounds, ending as one at a time would', async () => {
    const { steps, outcomes } = await run([
      { target: 'stock', type: 'insert', values: { id: 500, sku: 'new' } },
      { target: 'stock', type: 'update', key: { id: 500 }, values: { qty: 5 } },
      { target: 'stock', type: 'update', key: { id: 1 }, values: { qty: 1 } },
      { target: 'stock', type: 'increment', key: { id: 500 }, values: { qty: 2 } },
      { target: 'stock', type: 'update', key: { id: 2 }, values: { qty: 2 } },
      { target: 'stock', type: 'delete', key: { id: 500 } },
      { target: 'stock', type: 'increment', key: { id: 500 }, values: { qty: 1 } },
    ]);
    assert.deepEqual(
      outcomes.map((o) => [o.status, o.rows_affected]),
      [
        ['COMPLETED', 1],
        ['COMPLETED', 1],
        ['COMPLETED', 1],
        ['COMPLETED', 1],
        ['COMPLETED', 1],
        ['COMPLETED', 1],
        ['COMPLETED', 0],
      ],
    );
    assert.equal(
      steps.length,
      5,
      'the updates of rows 500, 1 and 2 share a statement; each later step on row 500 waits its round',
    );
    assert.deepEqual(await t.db.query('SELECT id, qty FROM public.stock WHERE id IN (1, 2, 500) ORDER BY id'), [
      { id: 1, qty: 1 },
      { id: 2, qty: 2 },
    ]);
  });

  describe('rounds of updates and increments folded into one change of each row', () => {
    beforeEach(async () => {
      await t.db.query(`CREATE TABLE public.tallies (id int PRIMARY KEY, n smallint, amount numeric(4,1), note text)`);
      await t.db.query(`INSERT INTO public.tallies SELECT g, 0, 1.0, 'seed' FROM generate_series(1, 3) g`);
    });
    /** The exit messages of the last chunk's steps. */
    const exitMessages = async () =>
      (
        await t.db.query<{ exit_message: string | null }>(
          `SELECT exit_message FROM batch.chunk_steps WHERE chunk_id = (SELECT max(id) FROM batch.chunks) ORDER BY id`,
        )
      ).map((m) => m.exit_message);
    const folded = (rounds: number) => `applied as one statement with the ${rounds - 1} other rounds of its rows`;
    const tally = (type: 'update' | 'increment', id: number, values: Record<string, number | string>) => ({
      target: 'tallies',
      type,
      key: { id },
      values,
    });

    it('are planned only for tables where nothing sees or checks a row between its changes', async () => {
      await t.db.query(`
        DROP TABLE IF EXISTS public.fold_checked, public.fold_parent, public.fold_child, public.fold_generated;
        CREATE TABLE public.fold_checked (id int PRIMARY KEY, n int CHECK (n > 0));
        CREATE TABLE public.fold_parent (id int PRIMARY KEY, n int);
        CREATE TABLE public.fold_child () INHERITS (public.fold_parent);
        CREATE TABLE public.fold_generated (id int PRIMARY KEY, n int, twice int GENERATED ALWAYS AS (n * 2) STORED)`);
      const catalog = t.get(CatalogService);
      await catalog.reload();
      const folds = async (name: string) => (await catalog.find(name))?.foldsRowChanges;
      try {
        assert.deepEqual(
          [
            await folds('tallies'),
            await folds('fold_checked'),
            await folds('fold_parent'),
            await folds('fold_generated'),
          ],
          [true, false, false, false],
        );
        assert.equal(await folds('stock'), false, 'a check constraint');
      } finally {
        await t.db.query(
          `DROP TABLE public.fold_checked, public.fold_child, public.fold_parent, public.fold_generated`,
        );
      }
    });

    it('rounds each step as its own statement would', async () => {
      const { steps, outcomes } = await run([
        ...range(3).map((id) => tally('increment', id, { amount: 0.05 })),
        ...range(3).map((id) => tally('increment', id, { amount: 0.05, n: id })),
        ...range(3).map((id) => tally('update', id, { note: `x${id}` })),
      ]);
      assert.ok(outcomes.every((o) => o.status === 'COMPLETED' && o.rows_affected === 1));
      assert.deepEqual(await exitMessages(), Array(steps.length).fill(folded(steps.length)));
      // 1.0 + 0.05 is stored as 1.1, and 1.1 + 0.05 as 1.2, where a sum of the increments would give 1.1.
      assert.deepEqual(await t.db.query('SELECT id, n, amount, note FROM public.tallies ORDER BY id'), [
        { id: 1, n: 1, amount: '1.2', note: 'x1' },
        { id: 2, n: 2, amount: '1.2', note: 'x2' },
        { id: 3, n: 3, amount: '1.2', note: 'x3' },
      ]);
    });

    it('runs the rounds as they are where a step in between fails', async () => {
      const failing = await run([
        tally('update', 1, { n: 32_000 }),
        tally('increment', 2, { n: 1 }),
        tally('increment', 1, { n: 1_000 }),
        tally('increment', 2, { n: 1 }),
        tally('update', 1, { n: 5 }),
      ]);
      assert.deepEqual(
        failing.outcomes.map((o) => [o.status, o.rows_affected, o.error_code]),
        [
          ['COMPLETED', 1, null],
          ['COMPLETED', 1, null],
          ['FAILED', null, '22003'],
          ['COMPLETED', 1, null],
          ['COMPLETED', 1, null],
        ],
      );
      assert.deepEqual(await t.db.query('SELECT id, n FROM public.tallies WHERE id < 3 ORDER BY id'), [
        { id: 1, n: 5 },
        { id: 2, n: 2 },
      ]);
    });

    it('folds rounds that meet a missing row: its operations affect none', async () => {
      const { outcomes } = await run([
        tally('update', 9, { n: 1 }),
        tally('update', 1, { n: 1 }),
        tally('increment', 9, { n: 1 }),
        tally('increment', 1, { n: 1 }),
      ]);
      assert.deepEqual(
        outcomes.map((o) => [o.status, o.rows_affected]),
        [
          ['COMPLETED', 0],
          ['COMPLETED', 1],
          ['COMPLETED', 0],
          ['COMPLETED', 1],
        ],
      );
      assert.deepEqual(await exitMessages(), [folded(2), folded(2)], 'a step per round');
      assert.deepEqual(await t.db.query('SELECT id, n FROM public.tallies WHERE id IN (1, 9)'), [{ id: 1, n: 2 }]);
    });

    it('reads its operations by ranges of ids and leaves out those between them that are not its own', async () => {
      const untouched = `SELECT xmin::text AS version, n FROM public.tallies WHERE id = 3`;
      const before = await t.db.query(untouched);
      const stock = (id: number) => ({ target: 'stock', type: 'update' as const, key: { id }, values: { note: 's' } });
      // Ranges: the first round's ids with the stock update of key 3 between them, then (four ids on) the second's.
      const { outcomes } = await run([
        tally('update', 1, { n: 7 }),
        stock(3),
        tally('update', 2, { n: 3 }),
        ...[4, 5, 6, 7].map(stock),
        tally('increment', 1, { n: 1 }),
        tally('increment', 2, { n: 2 }),
      ]);
      assert.ok(outcomes.every((o) => o.status === 'COMPLETED'));
      assert.deepEqual(
        (await exitMessages()).filter((m) => m !== null),
        [folded(2), folded(2)],
      );
      assert.deepEqual(await t.db.query('SELECT id, n FROM public.tallies WHERE id < 3 ORDER BY id'), [
        { id: 1, n: 8 },
        { id: 2, n: 5 },
      ]);
      assert.deepEqual(await t.db.query(untouched), before, "the other target's key changes nothing here");
    });
  });

  it('fails an increment that overflows or breaks a check, and keeps the rest', async () => {
    const { outcomes } = await run([
      { target: 'stock', type: 'increment', key: { id: 1 }, values: { qty: -11 } },
      { target: 'stock', type: 'increment', key: { id: 2 }, values: { qty: 2_147_483_647 } },
      { target: 'stock', type: 'increment', key: { id: 3 }, values: { qty: -10 } },
    ]);
    assert.deepEqual(
      outcomes.map((o) => o.error_code),
      ['23514', '22003', null],
    );
  });

  it('applies a chunk of 10,000 operations with 20 columns, split into statements of BATCH_STATEMENT_MAX_ROWS', async () => {
    const columns = range(19).map((i) => `c${i}`);
    await t.db.query(`CREATE TABLE public.wide (id int PRIMARY KEY, ${columns.map((c) => `${c} text`).join(', ')})`);
    const step = await stepWith({ BATCH_PROCESS_OPERATION_LIMIT: '10000', BATCH_STATEMENT_MAX_ROWS: '4000' });
    for (let from = 0; from < 10_000; from += 1000) {
      await operations.createMany(
        client,
        range(1000).map((i) => ({
          target: 'wide',
          type: 'insert' as const,
          values: Object.fromEntries([['id', from + i], ...columns.map((c) => [c, `${c}-${from + i}`])]),
        })),
      );
    }
    const { read, chunkId: executionId } = await step.execute();
    assert.equal(read, 10_000);
    const steps = await t.db.query<{ write_count: number }>(
      'SELECT write_count FROM batch.chunk_steps WHERE chunk_id = $1 ORDER BY id',
      [executionId],
    );
    assert.deepEqual(
      steps.map((s) => s.write_count),
      [4000, 4000, 2000],
    );
    assert.deepEqual(await t.db.query('SELECT c19 FROM public.wide WHERE id = 9999'), [{ c19: 'c19-9999' }]);
  });

  /** Runs chunks until none is left to claim (targets held back after a failure are let go at once). */
  async function drain(chunkStep = step, maxChunks = 50): Promise<number> {
    for (let chunks = 0; chunks < maxChunks; chunks++) {
      await t.db.query(`UPDATE batch.holds SET until = now()`);
      if ((await chunkStep.execute()).read === 0) return chunks;
    }
    throw new Error(`still claiming after ${maxChunks} chunks`);
  }

  const statusesOf = (created: { id: string }[]) =>
    t.db.query<{ status: string; error_code: string | null }>(
      'SELECT status, error_code FROM batch.operation_states WHERE id = ANY($1::bigint[]) ORDER BY id',
      [created.map((c) => c.id)],
    );

  it('ends a chunk over BATCH_SKIP_LIMIT visibly, rolled back, then applies it in parts within the limit: no loop', async () => {
    const step = await stepWith({ BATCH_SKIP_LIMIT: '1', BATCH_CHUNK_RETRY_LIMIT: '0' });
    const created = await operations.createMany(client, [
      { target: 'stock', type: 'increment', key: { id: 1 }, values: { qty: -100 } },
      { target: 'stock', type: 'increment', key: { id: 2 }, values: { qty: -100 } },
      { target: 'stock', type: 'increment', key: { id: 3 }, values: { qty: 1 } },
    ]);
    assert.equal((await step.execute()).read, 3);
    const [failed] = await t.db.query<{ status: string; exit_message: string; read_count: number }>(
      `SELECT status, exit_message, read_count FROM batch.chunks ORDER BY id DESC LIMIT 1`,
    );
    assert.deepEqual([failed.status, failed.read_count], ['FAILED', 3]);
    assert.match(
      failed.exit_message,
      /^rolled back \(failure 1, to be claimed in chunks of 2\): skip limit 1 exceeded; last error: SQLSTATE 23514/,
    );
    assert.deepEqual(
      (await statusesOf(created)).map((r) => r.status),
      ['PENDING', 'PENDING', 'PENDING'],
    );
    assert.equal(
      (await t.db.query<{ qty: number }>('SELECT qty FROM public.stock WHERE id = 3'))[0].qty,
      10,
      'rolled back',
    );
    assert.ok((await drain(step)) <= 6, 'split until each part is within the limit');
    assert.deepEqual(await statusesOf(created), [
      { status: 'FAILED', error_code: '23514' },
      { status: 'FAILED', error_code: '23514' },
      { status: 'COMPLETED', error_code: null },
    ]);
  });

  it('rolls back a target whose statement met a transient error, holds it back for a while, and applies it on retry; its chunk commits the others', async () => {
    await t.db.query(`CREATE TABLE public.flags (transient boolean NOT NULL)`);
    await t.db.query(`INSERT INTO public.flags VALUES (true)`);
    await t.db.query(`CREATE TABLE public.flaky (id int PRIMARY KEY)`);
    await t.db.query(`CREATE OR REPLACE FUNCTION public.flaky_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF (SELECT transient FROM public.flags) THEN RAISE EXCEPTION 'simulated serialization failure' USING ERRCODE = '40001'; END IF; RETURN NEW; END $$`);
    await t.db.query(
      `CREATE TRIGGER flaky_guard BEFORE INSERT ON public.flaky FOR EACH ROW EXECUTE FUNCTION public.flaky_guard()`,
    );
    const created = await operations.createMany(client, [
      { target: 'flaky', type: 'insert', values: { id: 1 } },
      { target: 'flaky', type: 'insert', values: { id: 2 } },
      { target: 'stock', type: 'update', key: { id: 1 }, values: { note: 'with the chunk' } },
    ]);
    assert.equal((await step.execute()).read, 3);
    const executions = await t.db.query<{ status: string; exit_message: string | null; read_count: number }>(
      `SELECT status, exit_message, read_count FROM batch.chunks ORDER BY id`,
    );
    assert.deepEqual(
      executions.map((e) => [e.status, e.read_count]),
      [
        ['COMPLETED', 1],
        ['FAILED', 2],
      ],
    );
    assert.match(executions[1].exit_message!, /^rolled back \(failure 1, to be retried in \d+ ms\): SQLSTATE 40001$/);
    assert.equal(
      (await t.db.query<{ note: string | null }>('SELECT note FROM public.stock WHERE id = 1'))[0].note,
      'with the chunk',
      'the other target committed',
    );
    assert.equal(await t.db.query(`SELECT * FROM public.flaky`).then((rows) => rows.length), 0);
    assert.deepEqual(
      (await t.db.query(`SELECT target FROM batch.holds WHERE until > now() ORDER BY target`)).map((h) => h.target),
      ['public.flaky'],
    );
    assert.equal((await step.execute()).read, 0, 'held back');
    await t.db.query(`UPDATE public.flags SET transient = false`);
    await drain();
    const statuses = await t.db.query<{ status: string; attempts: number }>(
      'SELECT status, attempts FROM batch.operation_states WHERE id = ANY($1::bigint[]) ORDER BY id',
      [created.map((c) => c.id)],
    );
    assert.deepEqual(statuses, [
      { status: 'COMPLETED', attempts: 1 },
      { status: 'COMPLETED', attempts: 1 },
      { status: 'COMPLETED', attempts: 1 },
    ]);
  });

  it('leaves a target whose row is locked elsewhere alone for a while, counting no failure, while the others flow', async () => {
    const step = await stepWith({ BATCH_LOCK_TIMEOUT: '200' });
    await t.db.query(`CREATE TABLE public.notes (id int PRIMARY KEY, v text)`);
    const statusOf = async (id: string) =>
      (await t.db.query<{ status: string }>('SELECT status FROM batch.operation_states WHERE id = $1', [id]))[0];
    const outside = await t.db.dataSource.createQueryRunner();
    try {
      const [increment, upsert] = await operations.createMany(client, [
        { target: 'stock', type: 'increment', key: { id: 1 }, values: { qty: 1 } },
        { target: 'notes', type: 'upsert', values: { id: 1, v: 'x' } },
      ]);
      await outside.startTransaction();
      await outside.query(`SELECT * FROM public.stock WHERE id = 1 FOR UPDATE`);
      assert.equal((await step.execute()).read, 2);
      assert.equal((await statusOf(upsert.id)).status, 'COMPLETED', 'the other target applied');
      assert.equal((await statusOf(increment.id)).status, 'PENDING');
      const [held] = await t.db.query<{ exit_message: string }>(
        `SELECT exit_message FROM batch.chunks WHERE status = 'FAILED' ORDER BY id DESC LIMIT 1`,
      );
      assert.match(held.exit_message, /row is locked elsewhere; public.stock left alone for \d+ ms\): SQLSTATE 55P03$/);
      const [{ remembered }] = await t.db.query<{ remembered: string | null }>(
        `SELECT locked_relation AS remembered FROM batch.holds WHERE target = 'public.stock'`,
      );
      assert.equal(remembered, null, 'a row lock: the hold is waited out');
      for (let round = 0; round < 5; round++) {
        await t.db.query(`UPDATE batch.holds SET until = now()`);
        await step.execute();
      }
      assert.equal((await statusOf(increment.id)).status, 'PENDING', 'deferred as long as the row is locked');
      const [{ failures }] = await t.db.query<{ failures: number }>(
        `SELECT coalesce((SELECT failures FROM batch.deferred WHERE id = $1), 0) AS failures`,
        [increment.id],
      );
      assert.equal(failures, 0, 'no failure counted');
      await outside.commitTransaction();
      await t.db.query(`UPDATE batch.holds SET until = now()`);
      await step.execute();
      assert.equal((await statusOf(increment.id)).status, 'COMPLETED');
    } finally {
      if (outside.isTransactionActive) await outside.rollbackTransaction();
      await outside.release();
    }
  });

  it('takes a target held behind a lock on its table again as soon as the lock goes, not at the end of its hold', async () => {
    const step = await stepWith({ BATCH_LOCK_TIMEOUT: '200' });
    await t.db.query(`CREATE TABLE public.ledger (id int PRIMARY KEY, v text)`);
    const statusOf = async (id: string) =>
      (await t.db.query<{ status: string }>('SELECT status FROM batch.operation_states WHERE id = $1', [id]))[0].status;
    const migration = await t.db.dataSource.createQueryRunner();
    try {
      const [upsert] = await operations.createMany(client, [
        { target: 'ledger', type: 'upsert', values: { id: 1, v: 'x' } },
      ]);
      await migration.startTransaction();
      await migration.query(`LOCK TABLE public.ledger IN SHARE MODE`);
      assert.equal((await step.execute()).read, 1);
      assert.equal(await statusOf(upsert.id), 'PENDING');
      const [{ remembered }] = await t.db.query<{ remembered: boolean }>(
        `SELECT locked_relation = 'public.ledger'::regclass AS remembered FROM batch.holds WHERE target = 'public.ledger'`,
      );
      assert.equal(remembered, true);
      await t.db.query(`UPDATE batch.holds SET until = now() + interval '1 hour'`); // a hold far longer than the lock
      assert.equal((await step.execute()).read, 0, 'held while the lock is');
      await migration.commitTransaction();
      assert.equal((await step.execute()).read, 1, 'taken at once, its hold not waited out');
      assert.equal(await statusOf(upsert.id), 'COMPLETED');
    } finally {
      if (migration.isTransactionActive) await migration.rollbackTransaction();
      await migration.release();
    }
  });

  it('fails a poison operation alone after bounded retries and a split, and applies the others', async () => {
    const step = await stepWith({ BATCH_CHUNK_RETRY_LIMIT: '2' });
    await t.db.query(`CREATE TABLE public.flaky (id int PRIMARY KEY, v text)`);
    await t.db.query(`CREATE OR REPLACE FUNCTION public.flaky_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.v = 'poison' THEN RAISE EXCEPTION 'a deadlock that never passes' USING ERRCODE = '40P01'; END IF; RETURN NEW; END $$`);
    await t.db.query(
      `CREATE TRIGGER flaky_guard BEFORE INSERT ON public.flaky FOR EACH ROW EXECUTE FUNCTION public.flaky_guard()`,
    );
    const created = await operations.createMany(
      client,
      Array.from({ length: 40 }, (_, i) => ({
        target: 'flaky',
        type: 'insert' as const,
        values: { id: i, v: i === 25 ? 'poison' : 'ok' },
      })),
    );
    const chunks = await drain(step);
    assert.ok(chunks <= 16, `${chunks} chunks: retried twice, then halved down to the one`);
    const statuses = await statusesOf(created);
    assert.deepEqual(statuses[25], { status: 'FAILED', error_code: '40P01' });
    assert.ok(statuses.every((s, i) => i === 25 || s.status === 'COMPLETED'));
    assert.equal(Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM public.flaky'))[0].n), 39);
    const [gaveUp] = await t.db.query<{ name: string; exit_message: string }>(
      `SELECT name, exit_message FROM batch.chunk_steps WHERE status = 'FAILED'`,
    );
    assert.deepEqual(
      [gaveUp.name, gaveUp.exit_message],
      ['gave up insert public.flaky', 'its chunk failed as a whole 9 times: SQLSTATE 40P01'],
    );
    const [own] = await t.db.query<{ error_message: string }>(
      'SELECT error_message FROM batch.operation_states WHERE id = $1',
      [created[25].id],
    );
    assert.equal(own.error_message, 'a deadlock that never passes');
  });

  it('fails an operation the service cannot plan (an error without a SQLSTATE) alone, with INTERNAL', async () => {
    const step = await stepWith({ BATCH_CHUNK_RETRY_LIMIT: '0' });
    const created = await operations.createMany(
      client,
      range(6).map((id) => ({ target: 'stock', type: 'update' as const, key: { id }, values: { note: 'planned' } })),
    );
    await t.db.query(`UPDATE batch.operations SET shape = 'not a shape' WHERE id = $1`, [created[2].id]);
    await drain(step);
    const statuses = await statusesOf(created);
    assert.deepEqual(statuses[2], { status: 'FAILED', error_code: 'INTERNAL' });
    assert.ok(statuses.every((s, i) => i === 2 || s.status === 'COMPLETED'));
    const [own] = await t.db.query<{ error_message: string }>(
      'SELECT error_message FROM batch.operation_states WHERE id = $1',
      [created[2].id],
    );
    assert.equal(own.error_message, 'the service could not apply it: an error in the service (SyntaxError)');
  });

  it('checks deferred constraints per statement, so a violation fails its operation and not the commit', async () => {
    await t.db.query(
      `CREATE TABLE public.deferred (id int PRIMARY KEY, code text, CONSTRAINT deferred_code UNIQUE (code) DEFERRABLE INITIALLY DEFERRED)`,
    );
    const { outcomes } = await run([
      { target: 'deferred', type: 'insert', values: { id: 1, code: 'x' } },
      { target: 'deferred', type: 'insert', values: { id: 2, code: 'x' } },
    ]);
    assert.deepEqual(
      outcomes.map((o) => [o.status, o.error_code]),
      [
        ['COMPLETED', null],
        ['FAILED', '23505'],
      ],
    );
  });

  it('writes char(n) and bit(n) columns whole, and matches key-only upserts back through the stored key', async () => {
    await t.db.query(`DROP TABLE IF EXISTS public.money`);
    await t.db.query(
      `CREATE TABLE public.money (amount numeric(4,2) PRIMARY KEY, currency char(3), flags bit(3), codes char(2)[])`,
    );
    const { outcomes } = await run([
      { target: 'money', type: 'insert', values: { amount: 1, currency: 'USD', flags: '101', codes: ['ab', 'c'] } },
      { target: 'money', type: 'upsert', values: { amount: '1.005' } }, // stored as 1.01: a new row
      { target: 'money', type: 'upsert', values: { amount: '1.00' } }, // the first row: nothing to do
      { target: 'money', type: 'insert', values: { amount: 2, flags: '10' } }, // bit(3) needs 3 bits
    ]);
    assert.deepEqual(
      outcomes.map((o) => [o.status, o.rows_affected, o.error_code]),
      [
        ['COMPLETED', 1, null],
        ['COMPLETED', 1, null],
        ['COMPLETED', 0, null],
        ['FAILED', null, '22026'],
      ],
    );
    assert.deepEqual(await t.db.query(`SELECT amount, currency, flags, codes FROM public.money ORDER BY amount`), [
      { amount: '1.00', currency: 'USD', flags: '101', codes: ['ab', 'c '] },
      { amount: '1.01', currency: null, flags: null, codes: null },
    ]);
  });

  it('writes every kind of value as sent: the statements read them from the stored JSON, never through the service', async () => {
    await t.db.query(`DROP TABLE IF EXISTS public.kinds; DROP TYPE IF EXISTS public.mood`);
    await t.db.query(`CREATE TYPE public.mood AS ENUM ('ok', 'it''s "fine"')`);
    await t.db
      .query(`CREATE TABLE public.kinds (id int PRIMARY KEY, "odd 'name\\" text, big bigint, price numeric(12,4), ratio float8, flag bool, said text,
                        doc jsonb, raw json, tags text[], grid int[][], docs jsonb[], bytes bytea, at timestamptz, day date, mood public.mood, ref uuid)`);
    const values = {
      id: 1,
      "odd 'name\\": 'ünïcödé 🎉 "quoted" \\ back\nslash',
      big: '9223372036854775807',
      price: '12345678.1234',
      ratio: 0.1,
      flag: true,
      said: 12.5,
      doc: { nested: { list: [1, 'two', null, { three: 3 }] }, empty: {} },
      raw: [1, { a: 'b' }],
      tags: ['a"b', null, 'c\\d', '{braces}', ''],
      grid: [
        [1, 2],
        [3, null],
      ],
      docs: [{ k: 1 }, null, ['x']],
      bytes: '\\xdeadbeef',
      at: '2026-11-21T10:00:00.5+05:30',
      day: '2026-02-28',
      mood: 'it\'s "fine"',
      ref: '{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}',
    };
    const [created] = await operations.createMany(client, [
      { target: 'kinds', type: 'insert', values },
      { target: 'kinds', type: 'insert', values: { id: 2, doc: null, tags: null, raw: null } },
    ]);
    await step.execute();
    assert.equal(
      (await t.db.query<{ status: string }>('SELECT status FROM batch.operation_states WHERE id = $1', [created.id]))[0]
        .status,
      'COMPLETED',
    );
    const [row] = await t.db.query<Record<string, unknown>>(
      `SELECT "odd 'name\\" AS odd, big::text, price::text, ratio, flag, said, doc, raw::text AS raw, tags, grid, docs, encode(bytes, 'hex') AS bytes,
              to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS at, day::text, mood::text, ref::text FROM public.kinds WHERE id = 1`,
    );
    assert.deepEqual(row, {
      odd: values["odd 'name\\"],
      big: '9223372036854775807',
      price: '12345678.1234',
      ratio: 0.1,
      flag: true,
      said: '12.5',
      doc: values.doc,
      raw: '[1, {"a": "b"}]',
      tags: values.tags,
      grid: values.grid,
      docs: values.docs,
      bytes: 'deadbeef',
      at: '2026-11-21 04:30:00.500',
      day: '2026-02-28',
      mood: 'it\'s "fine"',
      ref: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    });
    assert.deepEqual(
      await t.db.query('SELECT doc, tags, raw FROM public.kinds WHERE id = 2'),
      [{ doc: null, tags: null, raw: null }],
      'JSON null is NULL',
    );
  });

  it('retries a FAILED operation: it is applied again under the same id', async () => {
    const [created] = await operations.createMany(client, [
      { target: 'stock', type: 'insert', values: { id: 1, sku: 'dup' } },
    ]);
    await step.execute();
    assert.equal((await operations.get(client, created.id)).status, 'FAILED');
    await t.db.query('DELETE FROM public.stock WHERE id = 1');
    await operations.retry(client, created.id);
    await step.execute();
    const retried = await operations.get(client, created.id);
    assert.deepEqual(
      [retried.status, retried.rowsAffected, retried.attempts, retried.error],
      ['COMPLETED', 1, 2, null],
    );
  });
});
