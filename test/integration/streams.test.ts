import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, it } from 'node:test';
import { ChunkClaimer } from '../../src/services/engine/chunk-claimer.service';
import type { ClaimedOperation } from '../../src/interfaces/chunk.interfaces';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { TARGETS_SQL } from '../../src/services/engine/chunk-claimer.service';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { ChunkRepository } from '../../src/services/engine/chunk-repository';
import { BatchError } from '../../src/services/batch-error';
import { OperationService } from '../../src/services/ingest/operation.service';
import { Database } from '../../src/services/storage/database';
import { createTestApp, TestApp } from '../support/app-context';

describe('streams: each target and priority taken in order of id from its position, deferred operations merged in (real PostgreSQL)', () => {
  let t: TestApp;
  let operations: OperationService;
  let step: ChunkStep;
  let client: AuthenticatedClient;

  before(async () => {
    t = await createTestApp({ BATCH_PROCESS_OPERATION_LIMIT: '1000', BATCH_PROCESS_OPERATION_INTERVAL: '10' });
    operations = t.get(OperationService);
    step = t.get(ChunkStep);
    client = await t.client('streams');
  });
  after(() => t.close());

  beforeEach(async () => {
    // `applied` is drawn as rows go in: the order in which the operations were applied
    await t.db.query(`DROP TABLE IF EXISTS public.items, public.flags`);
    await t.db.query(
      `TRUNCATE batch.operations, batch.streams, batch.stream_runs, batch.deferred, batch.outcomes, batch.holds`,
    );
    await t.db.query(`CREATE TABLE public.items (id int PRIMARY KEY, applied bigint GENERATED ALWAYS AS IDENTITY)`);
  });

  const insert = (id: number, extra: object = {}) => ({
    target: 'items',
    type: 'insert' as const,
    values: { id },
    ...extra,
  });
  const position = async () =>
    (
      await t.db.query<{ taken_through: string }>(
        `SELECT taken_through FROM batch.streams WHERE target = 'public.items' AND priority = 0`,
      )
    )[0].taken_through;
  const applied = async () =>
    (await t.db.query<{ id: number }>(`SELECT id FROM public.items ORDER BY applied`)).map((r) => r.id);
  const targetsWithWork = async () =>
    (await t.db.query<{ target: string }>(TARGETS_SQL)).map((r) => r.target).filter((n) => n === 'public.items');
  /** Chunks until nothing is pending, waiting out holds. */
  async function drain(): Promise<void> {
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      if ((await step.execute()).read > 0) continue;
      const [{ n }] = await t.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM batch.operation_states WHERE status = 'PENDING'`,
      );
      if (n === 0) return;
      await sleep(20);
    }
    throw new Error('the queue did not drain');
  }

  it('passes over cancelled operations, and moves on a stream that holds nothing else up to the horizon', async () => {
    const created = await operations.createMany(
      client,
      [1, 2, 3, 4, 5].map((id) => insert(id)),
    );
    await operations.cancel(client, created[1].id);
    await operations.cancel(client, created[4].id);
    assert.equal((await step.execute()).read, 3);
    assert.deepEqual(await applied(), [1, 3, 4]);
    assert.equal(await position(), created[3].id, 'taken through the last one applied');

    assert.deepEqual(await targetsWithWork(), ['public.items'], 'a cancelled one lies after the position');
    assert.equal((await step.execute()).read, 0);
    assert.ok(BigInt(await position()) >= BigInt(created[4].id), 'moved past it');
    assert.deepEqual(await targetsWithWork(), [], 'nothing left to look at');

    const [later] = await operations.createMany(client, [insert(6)]);
    assert.equal((await step.execute()).read, 1);
    assert.equal(await position(), later.id);
    assert.deepEqual(await applied(), [1, 3, 4, 6]);
  });

  it('makes a cancel wait for the chunk that read its operation, then finds what that chunk settled', async () => {
    const created = await operations.createMany(
      client,
      [1, 2, 3].map((id) => insert(id)),
    );
    let cancel: Promise<unknown> | undefined;
    let cancelled = false;
    await t.get(Database).transaction(async (tx) => {
      const read = await t.app.get(ChunkClaimer).claim(tx, 10);
      assert.deepEqual(
        read.map((r) => [r.id, r.count]),
        [[created[0].id, 3]],
        'one run',
      );
      cancel = operations.cancel(client, created[1].id).finally(() => (cancelled = true));
      await sleep(300);
      assert.equal(cancelled, false, 'the cancel waits for the chunk');
      const outcomes = read.map((operation) => ({
        operation,
        status: 'COMPLETED' as const,
        rowsAffected: 1,
        error: null,
      }));
      await t
        .get(ChunkRepository)
        .recordChunk(tx, { startedAt: new Date(), read: 3, filtered: 0, steps: [], outcomes });
    });
    await assert.rejects(cancel!, (error: BatchError) => error.code === 'CONFLICT' && /COMPLETED/.test(error.message));
    assert.equal(await position(), created[2].id);
    assert.equal((await step.execute()).read, 0, 'nothing is read twice');
  });

  it('sets the operations of a chunk that failed as a whole apart, moves their stream past them, and applies them first', async () => {
    await t.db.query(`CREATE TABLE public.flags (transient boolean NOT NULL)`);
    await t.db.query(`INSERT INTO public.flags VALUES (true)`);
    await t.db.query(`CREATE OR REPLACE FUNCTION public.items_guard() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF (SELECT transient FROM public.flags) THEN RAISE EXCEPTION 'simulated deadlock' USING ERRCODE = '40P01'; END IF; RETURN NEW; END $$`);
    await t.db.query(
      `CREATE TRIGGER items_guard BEFORE INSERT ON public.items FOR EACH ROW EXECUTE FUNCTION public.items_guard()`,
    );
    const first = await operations.createMany(
      client,
      [1, 2, 3].map((id) => insert(id)),
    );
    assert.equal((await step.execute()).read, 3);
    assert.deepEqual(
      await t.db.query(`SELECT id, failures FROM batch.deferred ORDER BY id`),
      first.map(({ id }) => ({ id, failures: 1 })),
      'set apart, each with the failure counted',
    );
    assert.equal(await position(), first[2].id, 'their stream moved past them');

    const [later] = await operations.createMany(client, [insert(4)]);
    await t.db.query(`UPDATE public.flags SET transient = false`);
    await drain();
    assert.deepEqual(await applied(), [1, 2, 3, 4], 'in order of id, the deferred ones merged with their stream');
    assert.equal(await position(), later.id);
    assert.deepEqual(await t.db.query(`SELECT id FROM batch.deferred`), []);
    assert.deepEqual(
      await t.db.query(`SELECT DISTINCT status, attempts FROM batch.operation_states WHERE id = ANY ($1::bigint[])`, [
        [...first, later].map((c) => c.id),
      ]),
      [{ status: 'COMPLETED', attempts: 1 }],
    );
  });

  it('merges a scheduled operation that came due into its stream in order of id', async () => {
    const [scheduled] = await operations.createMany(client, [
      insert(1, { notBefore: new Date(Date.now() + 300).toISOString() }),
    ]);
    await operations.createMany(client, [insert(2)]);
    assert.equal((await step.execute()).read, 1, 'the later one does not wait for it');
    await sleep(400);
    const [after] = await operations.createMany(client, [insert(3)]);
    await drain();
    assert.deepEqual(await applied(), [2, 1, 3], 'due before the third was created: applied before it');
    assert.deepEqual(await t.db.query(`SELECT id FROM batch.deferred`), []);
    assert.equal(await position(), after.id);
    assert.ok(BigInt(scheduled.id) < BigInt(after.id));
  });
});

describe("runs: a stream's leading inserts and upserts claimed whole (real PostgreSQL)", () => {
  let t: TestApp;
  let operations: OperationService;
  let alice: AuthenticatedClient;
  let bob: AuthenticatedClient;

  before(async () => {
    t = await createTestApp({ BATCH_PROCESS_OPERATION_LIMIT: '1000' });
    operations = t.get(OperationService);
    alice = await t.client('alice');
    bob = await t.client('bob');
    await t.db.query(`CREATE TABLE public.items (id int PRIMARY KEY, qty int, note text)`);
  });
  after(() => t.close());

  const insert = (id: number) => ({ target: 'items', type: 'insert' as const, values: { id, qty: 1 } });

  /** What a claim of up to `limit` operations reads, rolled back. */
  async function claimedNow(limit: number): Promise<ClaimedOperation[]> {
    let read: ClaimedOperation[] = [];
    await t
      .get(Database)
      .transaction(async (tx) => {
        read = await t.app.get(ChunkClaimer).claim(tx, limit);
        throw Object.assign(new Error('rollback'), { rollback: true });
      })
      .catch((error: { rollback?: boolean }) => assert.ok(error.rollback, String(error)));
    return read;
  }

  it("claims runs of one client and shape, in order of id, then what follows the stream's first update as rounds", async () => {
    const created = [
      ...(await operations.createMany(alice, [insert(1), insert(2), insert(3)])),
      ...(await operations.createMany(bob, [insert(4), insert(5)])),
      ...(await operations.createMany(alice, [
        { target: 'items', type: 'insert', values: { id: 6, note: 'another shape' } },
        insert(7),
        { target: 'items', type: 'update', key: { id: 2 }, values: { qty: 5 } },
        insert(8),
      ])),
    ];
    const ids = created.map((c) => c.id);
    const read = await claimedNow(100);
    assert.deepEqual(
      read.map((r) => [r.id, r.count, r.clientId, r.identity === null, r.ids]),
      [
        [ids[0], 3, alice.id, true, undefined],
        [ids[3], 2, bob.id, true, undefined],
        [ids[5], 1, alice.id, true, undefined],
        [ids[6], 1, alice.id, true, undefined],
        [ids[7], 1, alice.id, true, [ids[7]]], // round 1: the update of row 2 and the insert of row 8
        [ids[8], 1, alice.id, true, [ids[8]]],
      ],
    );

    assert.equal((await t.get(ChunkStep).execute()).read, 9);
    assert.deepEqual(await t.db.query(`SELECT id, qty, note FROM public.items ORDER BY id`), [
      { id: 1, qty: 1, note: null },
      { id: 2, qty: 5, note: null },
      { id: 3, qty: 1, note: null },
      { id: 4, qty: 1, note: null },
      { id: 5, qty: 1, note: null },
      { id: 6, qty: null, note: 'another shape' },
      { id: 7, qty: 1, note: null },
      { id: 8, qty: 1, note: null },
    ]);
    assert.deepEqual(
      await t.db.query(`SELECT first_id, last_id FROM batch.settled_runs ORDER BY first_id`),
      [{ first_id: ids[0], last_id: ids[8] }],
      'completed plainly: one run of ids, whoever sent them',
    );
  });

  it('claims updates as one run only where each names its row by canonical key values', async () => {
    await t.db.query(`CREATE TABLE public.prices (code numeric PRIMARY KEY, n int)`);
    await t.db.query(`INSERT INTO public.prices VALUES (1, 0), (2, 0)`);
    const update = (code: string) => ({ target: 'prices', type: 'update' as const, key: { code }, values: { n: 1 } });
    const ids = (await operations.createMany(alice, [update('1'), update('2.0')])).map((c) => c.id);
    const read = await claimedNow(100);
    assert.deepEqual(
      read.map((r) => [r.id, r.count]),
      [
        [ids[0], 1],
        [ids[1], 1],
      ],
      'numeric keys have no one text (2.0 is 2): not told apart by their tokens, so one at a time',
    );
    assert.equal((await t.get(ChunkStep).execute()).read, 2);
    assert.deepEqual(await t.db.query(`SELECT code::text, n FROM public.prices ORDER BY code`), [
      { code: '1', n: 1 },
      { code: '2', n: 1 },
    ]);
  });

  it('claims increments as one run where each meets another row, else as rounds', async () => {
    await t.db.query(`CREATE TABLE public.counters (id int PRIMARY KEY, n int NOT NULL CHECK (n < 3))`);
    await t.db.query(`INSERT INTO public.counters SELECT g, 0 FROM generate_series(1, 4) g`);
    const increment = (id: number) => ({
      target: 'counters',
      type: 'increment' as const,
      key: { id },
      values: { n: 1 },
    });
    const claimed = async () => (await claimedNow(100)).map((r) => [r.id, r.count, r.ids]);

    const distinct = (await operations.createMany(alice, [increment(1), increment(2), increment(3)])).map((c) => c.id);
    assert.deepEqual(await claimed(), [[distinct[0], 3, undefined]], 'each row once: one run');
    assert.equal((await t.get(ChunkStep).execute()).read, 3);

    const again = (await operations.createMany(alice, [1, 4, 1, 1, 2].map(increment))).map((c) => c.id);
    assert.deepEqual(
      await claimed(),
      [
        [again[0], 3, [again[0], again[1], again[4]]],
        [again[2], 1, [again[2]]],
        [again[3], 1, [again[3]]],
      ],
      'the third meets row 1 again: the stream as rounds, the k-th increment of each row in round k',
    );
    assert.equal((await t.get(ChunkStep).execute()).read, 5);
    assert.deepEqual(await t.db.query(`SELECT id, n FROM public.counters ORDER BY id`), [
      { id: 1, n: 2 },
      { id: 2, n: 2 },
      { id: 3, n: 1 },
      { id: 4, n: 1 },
    ]);
    assert.deepEqual(
      await t.db.query(
        `SELECT status, error_code FROM batch.operation_states WHERE id = ANY($1::bigint[]) ORDER BY id`,
        [again.slice(2, 4)],
      ),
      [
        { status: 'FAILED', error_code: '23514' },
        { status: 'FAILED', error_code: '23514' },
      ],
      "row 1's third and fourth increments break its check, as each would alone",
    );
  });

  const runsRecorded = async () =>
    (
      await t.db.query<{ first_id: string; last_id: string }>(
        `SELECT first_id, last_id FROM batch.stream_runs WHERE target = 'public.lines' ORDER BY last_id`,
      )
    ).map((r) => [r.first_id, r.last_id]);

  it('reads a lead from the runs recorded at ingest, not from its operations, taking a run in part at the limit', async () => {
    await t.db.query(`CREATE TABLE public.lines (id int PRIMARY KEY)`);
    const line = (id: number) => ({ target: 'lines', type: 'insert' as const, values: { id } });
    const requests = [];
    for (const from of [0, 600, 1200]) {
      requests.push(
        await operations.createMany(
          alice,
          Array.from({ length: 600 }, (_, k) => line(from + k)),
        ),
      );
    }
    const ids = requests.flat().map((c) => c.id);
    assert.deepEqual(await runsRecorded(), [
      [ids[0], ids[599]],
      [ids[600], ids[1199]],
      [ids[1200], ids[1799]],
    ]);
    // sizes no operation has: what the claim reports comes from the runs
    await t.db.query(`UPDATE batch.stream_runs SET bytes = 600000 WHERE target = 'public.lines'`);

    assert.deepEqual(
      (await claimedNow(1000)).map((r) => [r.id, r.count, r.bytes]),
      [[ids[0], 1000, 1_000_000]],
      'one run, the second taken in part',
    );
    assert.equal((await t.get(ChunkStep).execute()).read, 1000);
    assert.deepEqual(
      await runsRecorded(),
      [
        [ids[600], ids[1199]],
        [ids[1200], ids[1799]],
      ],
      'a run passed is gone',
    );
    assert.deepEqual(
      (await claimedNow(1000)).map((r) => [r.id, r.count, r.bytes]),
      [[ids[1000], 800, 800_000]],
      'from within the second run',
    );
    assert.equal((await t.get(ChunkStep).execute()).read, 800);
    assert.deepEqual(await runsRecorded(), []);
    const [{ n }] = await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.lines`);
    assert.equal(n, 1800);
  });

  it('ends the run of a cancelled operation, so that one gone from the table is never claimed', async () => {
    await t.db.query(`CREATE TABLE public.marks (id int PRIMARY KEY)`);
    const mark = (id: number) => ({ target: 'marks', type: 'insert' as const, values: { id } });
    const ids = (await operations.createMany(alice, [1, 2, 3, 4, 5].map(mark))).map((c) => c.id);
    await operations.cancel(alice, ids[1]);
    // retention deletes a cancelled operation, in time, even one its stream has not passed yet
    await t.db.query(`DELETE FROM batch.outcomes WHERE operation_id = $1`, [ids[1]]);
    await t.db.query(`DELETE FROM batch.operations WHERE id = $1`, [ids[1]]);
    const read = (await claimedNow(100)).map((r) => [r.id, r.count, r.ids]);
    assert.deepEqual(read, [[ids[0], 4, [ids[0], ids[2], ids[3], ids[4]]]], 'not one run: a round of four');
    assert.equal((await t.get(ChunkStep).execute()).read, 4);
    assert.deepEqual(
      await t.db.query(`SELECT id FROM public.marks ORDER BY id`),
      [1, 3, 4, 5].map((id) => ({ id })),
    );
  });
});
