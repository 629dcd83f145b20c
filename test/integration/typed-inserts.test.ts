import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Client } from 'pg';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { RetentionService } from '../../src/services/storage/retention.service';
import { createTestApp, TestApp } from '../support/app-context';
import { dbClientConfig } from '../support/shared-services';

describe("inserts' values kept typed beside their JSON, and applied from there (real PostgreSQL)", () => {
  let t: TestApp;
  let operations: OperationService;
  let step: ChunkStep;
  let client: AuthenticatedClient;

  before(async () => {
    t = await createTestApp({ BATCH_PROCESS_OPERATION_LIMIT: '1000' });
    operations = t.get(OperationService);
    step = t.get(ChunkStep);
    client = await t.client('typed');
  });
  after(() => t.close());

  beforeEach(async () => {
    await t.db.query(`DROP TABLE IF EXISTS public.items, public.moods, public.clocks`);
    await t.db.query(`DROP TYPE IF EXISTS public.mood`);
    await t.db.query(`TRUNCATE batch.typed_targets`);
    await t.db.query(
      `CREATE TABLE public.items (id int PRIMARY KEY, price numeric(8,2), note varchar(20), at timestamptz,
                                  applied bigint GENERATED ALWAYS AS IDENTITY)`,
    );
  });

  const insert = (id: number) => ({
    target: 'items',
    type: 'insert' as const,
    values: { id, price: '1.005', note: `note ${id}`, at: '2026-11-21T10:00:00+05:30' },
  });
  const stage = async (target = 'public.items') =>
    (await t.db.query<{ stage: string | null }>(`SELECT stage FROM batch.typed_targets WHERE target = $1`, [target]))[0]
      ?.stage;
  const items = () =>
    t.db.query<{ id: number; price: string; note: string; at: Date }>(
      `SELECT id, price, note, at FROM public.items ORDER BY applied`,
    );
  const drain = async () => {
    while ((await step.execute()).read > 0);
  };

  /** Ids 1 … n: statements of fewer than a hundred inserts are applied from their JSON. */
  const ids = (n = 120) => Array.from({ length: n }, (_, i) => i + 1);

  it("writes each insert's values typed at ingest, and the chunk reads them from there", async () => {
    await operations.createMany(client, ids().map(insert));
    const relation = await stage();
    assert.ok(relation, 'the target has a stage');
    const typed = await t.db.query<{ id: number; price: string; note: string }>(
      `SELECT id, price, note FROM ${relation} ORDER BY operation_id LIMIT 3`,
    );
    assert.deepEqual(
      typed.map((r) => [r.id, r.price, r.note]),
      [1, 2, 3].map((id) => [id, '1.005', `note ${id}`]),
      'in the types the writer casts to, before the column applies its precision',
    );
    // what the chunk reads is what is there: a value changed in the stage shows in the target
    await t.db.query(`UPDATE ${relation} SET note = 'from the stage' WHERE id = 2`);
    await drain();
    const rows = await items();
    assert.deepEqual(
      rows.map((r) => [r.id, r.price, r.note]),
      ids().map((id) => [id, '1.01', id === 2 ? 'from the stage' : `note ${id}`]),
    );
    assert.equal(rows[0].at.toISOString(), '2026-11-21T04:30:00.000Z');
  });

  it('applies a statement of fewer than a hundred inserts from their JSON', async () => {
    await operations.createMany(client, ids(99).map(insert));
    await t.db.query(`UPDATE ${await stage()} SET note = 'from the stage'`);
    await drain();
    assert.deepEqual(
      (await items()).map((r) => r.note),
      ids(99).map((id) => `note ${id}`),
    );
  });

  it('applies a run from its JSON where a row is missing from the stage, each operation once', async () => {
    const created = await operations.createMany(client, ids().map(insert));
    const relation = await stage();
    await t.db.query(`UPDATE ${relation} SET note = 'from the stage'`);
    await t.db.query(`DELETE FROM ${relation} WHERE operation_id = $1`, [created[2].id]);
    await drain();
    assert.deepEqual(
      (await items()).map((r) => [r.id, r.note]),
      ids().map((id) => [id, `note ${id}`]),
    );
    const drawn = await t.db.query<{ applied: string }>(`SELECT applied FROM public.items ORDER BY applied`);
    assert.deepEqual(
      drawn.map((r) => Number(r.applied)),
      ids(),
      'the identity drawn once per row, as one insert at a time draws it: nothing drawn for the stage',
    );
    const states = await t.db.query<{ status: string; rows_affected: number }>(
      `SELECT status, rows_affected FROM batch.operation_states WHERE id = ANY ($1::bigint[]) ORDER BY id`,
      [created.map((c) => c.id)],
    );
    assert.deepEqual(
      states.map((s) => [s.status, s.rows_affected]),
      ids().map(() => ['COMPLETED', 1]),
    );
  });

  it("applies from the JSON once a column's type changed, and stages later inserts anew", async () => {
    await operations.createMany(client, ids().map(insert));
    const before = await stage();
    await t.db.query(`UPDATE ${before} SET note = 'from the stage'`);
    await t.db.query(`ALTER TABLE public.items ALTER COLUMN note TYPE text`);
    await t.get(CatalogService).reload();
    await drain();
    assert.deepEqual(
      (await items()).map((r) => r.note),
      ids().map((id) => `note ${id}`),
    );
    await operations.createMany(client, [insert(1000)]);
    const renewed = await stage();
    assert.notEqual(renewed, before, 'a new stage, for the columns as they are');
    const [{ types }] = await t.db.query<{ types: string[] }>(
      `SELECT types FROM batch.typed_targets WHERE target = 'public.items'`,
    );
    assert.deepEqual(types, ['integer', 'numeric', 'text', 'timestamp with time zone', 'bigint']);
  });

  it('keeps no stage for a target whose values could read otherwise when applied (an enum, say)', async () => {
    await t.db.query(`CREATE TYPE public.mood AS ENUM ('calm', 'busy')`);
    await t.db.query(`CREATE TABLE public.moods (id int PRIMARY KEY, mood public.mood)`);
    // a time with a time zone given without its offset takes the one of the day it is read on
    await t.db.query(`CREATE TABLE public.clocks (id int PRIMARY KEY, at timetz)`);
    await t.get(CatalogService).reload();
    await operations.createMany(client, [{ target: 'moods', type: 'insert', values: { id: 1, mood: 'busy' } }]);
    await operations.createMany(client, [{ target: 'clocks', type: 'insert', values: { id: 1, at: '10:00' } }]);
    assert.equal(await stage('public.moods'), null);
    assert.equal(await stage('public.clocks'), null);
    await drain();
    assert.deepEqual(await t.db.query(`SELECT id, mood::text FROM public.moods`), [{ id: 1, mood: 'busy' }]);
  });

  it('gives a target its first stage once a column of a type kept nowhere is retyped', async () => {
    await t.db.query(`CREATE TYPE public.mood AS ENUM ('calm', 'busy')`);
    await t.db.query(`CREATE TABLE public.moods (id int PRIMARY KEY, mood public.mood)`);
    await t.get(CatalogService).reload();
    const mood = (id: number) => ({ target: 'moods', type: 'insert' as const, values: { id, mood: 'busy' } });
    await operations.createMany(client, [mood(0)]);
    assert.equal(await stage('public.moods'), null);
    await drain();
    await t.db.query(`ALTER TABLE public.moods ALTER COLUMN mood TYPE text`);
    await t.get(CatalogService).reload();
    await operations.createMany(client, ids().map(mood));
    await drain(); // from the JSON: the worker finds the column retyped and makes the entry again
    const relation = await stage('public.moods');
    assert.ok(relation, 'a stage, now that every column can be kept');
    await operations.createMany(client, [1000, 1001].map(mood));
    assert.deepEqual(await t.db.query(`SELECT id, mood FROM ${relation} ORDER BY id`), [
      { id: 1000, mood: 'busy' },
      { id: 1001, mood: 'busy' },
    ]);
    await drain();
    assert.equal((await t.db.query(`SELECT id FROM public.moods`)).length, 123);
  });

  it('makes a stage dropped by hand again for the inserts that come after', async () => {
    await operations.createMany(client, ids().map(insert));
    const relation = await stage();
    await t.db.query(`DROP TABLE ${relation}`);
    await t.get(RetentionService).run(); // passes it by while it is gone
    await drain(); // from the JSON: the stage is gone
    await operations.createMany(client, ids(240).slice(120).map(insert));
    assert.equal(await stage(), relation, 'made again under its name');
    await t.db.query(`UPDATE ${relation} SET note = 'from the stage'`);
    await drain();
    assert.deepEqual(
      (await items()).map((r) => [r.id, r.note]),
      ids(240).map((id) => [id, id > 120 ? 'from the stage' : `note ${id}`]),
    );
  });

  it('never waits for a stage another transaction is making: the create goes without it', async () => {
    const maker = new Client(dbClientConfig(t.db.name));
    await maker.connect();
    try {
      await maker.query('BEGIN');
      await maker.query(`SELECT pg_advisory_xact_lock(hashtext('batch.typed_stage'), hashtext('public.items'))`);
      const outcome = await Promise.race([
        operations.createMany(client, [insert(1)]).then(() => 'stored'),
        sleep(5000).then(() => 'waited for the stage'),
      ]);
      assert.equal(outcome, 'stored');
      assert.equal(await stage(), undefined, 'no entry made meanwhile');
    } finally {
      await maker.end();
    }
    await operations.createMany(client, [insert(2)]);
    assert.ok(await stage(), 'made by the next create');
  });

  it('writes no typed row where a value is refused, and stores the operation all the same', async () => {
    await operations.createMany(client, [insert(1)]);
    const relation = await stage();
    const [{ written }] = await t.db.query<{ written: number }>(
      `SELECT batch.type_inserts('public.items', '["insert",["id"],null,"v"]', ARRAY[-1, -2]::bigint[],
                                 ARRAY['{"id": 7}', '{"id": "seven"}']::jsonb[]) AS written`,
    );
    assert.equal(written, 0);
    assert.deepEqual(await t.db.query(`SELECT id FROM ${relation} WHERE operation_id < 0`), []);
  });

  it('retention empties a stage of the operations taken and drops a stage no longer named', async () => {
    await operations.createMany(client, [1, 2].map(insert));
    const first = await stage();
    await drain();
    await operations.createMany(client, [insert(3)]);
    await t.db.query(`ALTER TABLE public.items ADD COLUMN extra int`);
    await t.get(CatalogService).reload();
    await operations.createMany(client, [{ ...insert(4), values: { ...insert(4).values, extra: 1 } }]);
    const second = await stage();
    assert.notEqual(second, first);
    await t.get(RetentionService).run();
    const [{ exists }] = await t.db.query<{ exists: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS exists`, [first]);
    assert.equal(exists, false, 'the stage made for the columns before is dropped');
    assert.deepEqual(await t.db.query(`SELECT id FROM ${second}`), [{ id: 4 }], 'nothing taken yet');
    await drain();
    await t.get(RetentionService).run();
    assert.deepEqual(await t.db.query(`SELECT id FROM ${second}`), []);
    assert.deepEqual(
      (await items()).map((r) => r.id),
      [1, 2, 3, 4],
    );
  });
});
