import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Client } from 'pg';
import type { AuthenticatedClient } from '../../src/services/access/client.service';
import { BatchError } from '../../src/services/batch-error';
import { ChunkClaimer } from '../../src/services/engine/chunk-claimer.service';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { PreparedChunks } from '../../src/services/engine/prepared-chunks';
import { OperationService } from '../../src/services/ingest/operation.service';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { Database } from '../../src/services/storage/database';
import { NamedDatabases } from '../../src/services/storage/named-databases';
import { NamedDatabasesHealthIndicator } from '../../src/services/observability/health-indicators';
import { RetentionService } from '../../src/services/storage/retention.service';
import type { ICreateBatchOperationRequest } from '../../src/interfaces/operation.interfaces';
import { createTestApp, TestApp } from '../support/app-context';
import { dbClientConfig, sharedDatabaseUrl } from '../support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../support/test-database';

const INVOICES = `(id int PRIMARY KEY, amount numeric(10,2) NOT NULL CHECK (amount >= 0), note text)`;

/**
 * Targets in another database (BATCH_DATABASES `billing`, on the same server): operations checked against its
 * catalog, applied there in chunks of that database only, each with a row of its ledger in the same transaction, and
 * settled here; a chunk whose worker stopped between the two commits settled from the ledger, never applied twice.
 */
describe('targets in another database (BATCH_DATABASES)', () => {
  const billingName = uniqueName('billing');
  let billing: Client;
  let t: TestApp;
  let operations: OperationService;
  let step: ChunkStep;
  let caller: AuthenticatedClient;

  before(async () => {
    await createDatabase(billingName);
    billing = new Client(dbClientConfig(billingName));
    await billing.connect();
    const url = sharedDatabaseUrl(billingName);
    t = await createTestApp({
      BATCH_DATABASES: JSON.stringify({ billing: url }),
      BATCH_PROCESS_OPERATION_LIMIT: '1000',
    });
    operations = t.get(OperationService);
    step = t.get(ChunkStep);
    caller = await t.client('accounts', ['billing:*', 'ledger_lines']);
  });
  after(async () => {
    await t?.close();
    await billing?.end();
    await dropDatabase(billingName);
  });

  beforeEach(async () => {
    await billing.query(`DROP TABLE IF EXISTS invoices; CREATE TABLE invoices ${INVOICES}`);
    await billing.query(`DROP TABLE IF EXISTS lines; CREATE TABLE lines (id int PRIMARY KEY, seq bigserial)`);
    await t.db.query(`DROP TABLE IF EXISTS ledger_lines; CREATE TABLE ledger_lines (id int PRIMARY KEY, note text)`);
    await t.get(CatalogService).reload('billing');
  });

  const invoice = (request: Omit<ICreateBatchOperationRequest, 'target'>): ICreateBatchOperationRequest => ({
    target: 'billing:invoices',
    ...request,
  });

  /** A worker looks for chunks left between their commits once a second (ChunkStep): past that, then the queue. */
  async function drainAfterLeases(): Promise<void> {
    await t.db.query(`UPDATE batch.prepared_chunks SET lease_until = now() - interval '1 second'`);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await drain();
  }

  async function drain(): Promise<void> {
    for (let i = 0; i < 50; i++) if ((await step.execute()).read === 0) return;
    assert.fail('the queue did not drain');
  }

  async function states(ids: string[]) {
    return t.db.query<{ id: string; status: string; rows_affected: number | null; error_code: string | null }>(
      `SELECT id, status, rows_affected, error_code FROM batch.operation_states WHERE id = ANY ($1) ORDER BY id`,
      [ids],
    );
  }

  it('applies the five types there as they would apply one by one, and names the target in full', async () => {
    const created = await operations.createMany(caller, [
      invoice({ type: 'insert', values: { id: 1, amount: 10, note: 'new' } }),
      invoice({ type: 'insert', values: { id: 2, amount: 5 } }),
      invoice({ type: 'increment', key: { id: 1 }, values: { amount: 2.5 } }),
      invoice({ type: 'update', key: { id: 2 }, values: { note: 'paid' } }),
      invoice({ type: 'upsert', values: { id: 3, amount: 7, note: 'upserted' } }),
      invoice({ type: 'upsert', values: { id: 1, amount: 1, note: 'replaced' } }),
      invoice({ type: 'delete', key: { id: 2 } }),
      invoice({ type: 'update', key: { id: 9 }, values: { note: 'no such row' } }),
    ]);
    await drain();
    const read = await operations.get(caller, created[0].id);
    assert.equal(read.target, 'billing:public.invoices', 'the database named in full');
    const { rows } = await billing.query(`SELECT id, amount::text, note FROM invoices ORDER BY id`);
    assert.deepEqual(rows, [
      { id: 1, amount: '1.00', note: 'replaced' },
      { id: 3, amount: '7.00', note: 'upserted' },
    ]);
    const settled = await states(created.map((op) => op.id));
    assert.deepEqual(
      settled.map((s) => [s.status, s.rows_affected]),
      [...Array(7).fill(['COMPLETED', 1]), ['COMPLETED', 0]],
    );
    const { rows: ledger } = await billing.query(`SELECT count(*)::int AS n FROM batch_ledger.applied_chunks`);
    assert.ok(ledger[0].n >= 1, 'a ledger row per chunk applied there');
    const { rows: schemas } = await billing.query(
      `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'batch%' ORDER BY 1`,
    );
    assert.deepEqual(
      schemas.map((s: { nspname: string }) => s.nspname),
      ['batch_ledger'],
      'nothing of the queue there',
    );
    assert.equal((await t.db.query(`SELECT count(*)::int AS n FROM batch.prepared_chunks`))[0].n, 0, 'all settled');

    await billing.query(`UPDATE batch_ledger.applied_chunks SET applied_at = now() - interval '1 year'`);
    assert.equal((await t.get(RetentionService).purge()).ledgers, ledger[0].n, 'old ledger rows go with retention');
  });

  it('skips an operation that fails there with its error, the others applied; a chunk holds one database', async () => {
    const created = await operations.createMany(caller, [
      invoice({ type: 'insert', values: { id: 1, amount: 1 } }),
      { target: 'ledger_lines', type: 'insert', values: { id: 1, note: 'main' } },
      invoice({ type: 'insert', values: { id: 2, amount: -1 } }),
      invoice({ type: 'insert', values: { id: 3, amount: 3 } }),
      { target: 'main:ledger_lines', type: 'insert', values: { id: 2, note: 'main' } },
    ]);
    await drain();
    assert.deepEqual(
      (await states(created.map((op) => op.id))).map((s) => [s.status, s.error_code]),
      [
        ['COMPLETED', null],
        ['COMPLETED', null],
        ['FAILED', '23514'],
        ['COMPLETED', null],
        ['COMPLETED', null],
      ],
    );
    assert.deepEqual((await billing.query(`SELECT id FROM invoices ORDER BY id`)).rows, [{ id: 1 }, { id: 3 }]);
    const chunks = await t.db.query<{ targets: string[] }>(
      `SELECT array_agg(DISTINCT target ORDER BY target) AS targets FROM batch.outcomes o
        WHERE operation_id = ANY ($1) GROUP BY chunk_id`,
      [created.map((op) => op.id)],
    );
    assert.ok(
      chunks.every((c) => c.targets.every((target) => target.startsWith('billing:')) || c.targets.length === 1),
      `each chunk in one database: ${JSON.stringify(chunks)}`,
    );
  });

  it('copies a chunk of inserts alone, and applies it as statements where the copy is refused', async () => {
    const good = await operations.createMany(
      caller,
      Array.from({ length: 20 }, (_, i) =>
        invoice({ type: 'insert', values: { id: i + 1, amount: i, note: `n\t${i}\\` } }),
      ),
    );
    await drain();
    const steps = await t.db.query<{ exit_message: string }>(
      `SELECT s.exit_message FROM batch.chunk_steps s JOIN batch.operation_states o ON o.chunk_id = s.chunk_id
        WHERE o.id = $1`,
      [good[0].id],
    );
    assert.deepEqual(
      steps.map((step) => step.exit_message),
      ['copied'],
    );
    const { rows } = await billing.query(`SELECT count(*)::int AS n, max(note) AS note FROM invoices`);
    assert.deepEqual(rows[0], { n: 20, note: 'n\t9\\' }, 'every row, its text as sent');

    // in their order of application, as one by one would: the serial drawn in the order of the operations
    const ids = [5, 3, 9, 1, 7];
    await operations.createMany(
      caller,
      ids.map((id) => ({ target: 'billing:lines', type: 'insert' as const, values: { id } })),
    );
    await drain();
    const lines = await billing.query<{ id: number }>(`SELECT id FROM lines ORDER BY seq`);
    assert.deepEqual(
      lines.rows.map((line) => line.id),
      ids,
    );

    const mixed = await operations.createMany(caller, [
      invoice({ type: 'insert', values: { id: 100, amount: 1 } }),
      invoice({ type: 'insert', values: { id: 101, amount: -1 } }),
      invoice({ type: 'insert', values: { id: 1, amount: 1 } }),
      invoice({ type: 'insert', values: { id: 102, amount: 2 } }),
    ]);
    await drain();
    assert.deepEqual(
      (await states(mixed.map((op) => op.id))).map((s) => [s.status, s.error_code]),
      [
        ['COMPLETED', null],
        ['FAILED', '23514'],
        ['FAILED', '23505'],
        ['COMPLETED', null],
      ],
    );
    assert.equal((await billing.query(`SELECT count(*)::int AS n FROM invoices`)).rows[0].n, 22);
  });

  it('copies a run of inserts from their values kept typed here, else from their JSON, each once', async () => {
    const inserts = (ids: number[]) =>
      operations.createMany(
        caller,
        ids.map((id) => invoice({ type: 'insert', values: { id, amount: '1.005', note: `note ${id}` } })),
      );
    const range = (from: number, n = 120) => Array.from({ length: n }, (_, i) => from + i);
    const stageOf = async (target: string) =>
      (
        await t.db.query<{ stage: string | null; types: string[] }>(
          `SELECT stage, types FROM batch.typed_targets WHERE target = $1`,
          [target],
        )
      )[0];
    const notes = async (ids: number[]) =>
      (
        await billing.query<{ note: string; amount: string }>(
          `SELECT note, amount FROM invoices WHERE id = ANY ($1) ORDER BY id`,
          [ids],
        )
      ).rows.map((r) => `${r.note} ${r.amount}`);

    await inserts(range(1));
    const first = await stageOf('billing:public.invoices');
    assert.ok(first?.stage, 'made at ingest from the catalog of that database');
    assert.deepEqual(first.types, ['integer', 'numeric', 'text']);
    // what the copy reads is what is there: a value changed in the stage shows in the target
    await t.db.query(`UPDATE ${first.stage} SET note = 'typed' WHERE id = 2`);
    await drain();
    assert.deepEqual(await notes([1, 2]), ['note 1 1.01', 'typed 1.01'], "the column's precision applied there");

    // a column retyped there: the run stored before copied from its JSON, and the stage made anew for the columns as
    // they are, beside a new one that draws a serial
    await billing.query(`ALTER TABLE invoices ALTER COLUMN note TYPE varchar(40), ADD COLUMN seq bigserial`);
    await t.get(CatalogService).reload('billing');
    const retyped = await inserts(range(201));
    await t.db.query(`UPDATE ${first.stage} SET note = 'typed'`);
    await drain();
    assert.deepEqual(await notes([201, 320]), ['note 201 1.01', 'note 320 1.01']);
    const second = await stageOf('billing:public.invoices');
    assert.deepEqual(second.types, ['integer', 'numeric', 'character varying', 'bigint']);
    assert.notEqual(second.stage, first.stage);

    // a row missing from the stage: the run copied from its JSON, nothing drawn for the rows the stage had
    const missing = await inserts(range(401));
    await t.db.query(`UPDATE ${second.stage} SET note = 'typed'`);
    await t.db.query(`DELETE FROM ${second.stage} WHERE operation_id = $1`, [missing[5].id]);
    await drain();
    assert.deepEqual(await notes([401, 406, 520]), ['note 401 1.01', 'note 406 1.01', 'note 520 1.01']);
    const drawn = await billing.query<{ seq: string }>(`SELECT seq FROM invoices WHERE id >= 401 ORDER BY seq`);
    assert.equal(Number(drawn.rows[119].seq) - Number(drawn.rows[0].seq), 119, 'one value drawn per row');
    assert.deepEqual(
      [...new Set((await states([...retyped, ...missing].map((op) => op.id))).map((s) => s.status))],
      ['COMPLETED'],
    );

    // the next run read typed again
    await inserts(range(601));
    await t.db.query(`UPDATE ${second.stage} SET note = 'typed'`);
    await drain();
    assert.deepEqual(await notes([601, 720]), ['typed 1.01', 'typed 1.01']);
  });

  it('refuses an unknown database, a column it does not have, a table not granted', async () => {
    const refused = async (request: ICreateBatchOperationRequest) =>
      operations.createMany(caller, [request]).then(
        () => assert.fail('accepted'),
        (error: BatchError) => error.code,
      );
    assert.equal(await refused({ target: 'nowhere:invoices', type: 'insert', values: { id: 1 } }), 'UNKNOWN_TARGET');
    assert.equal(await refused(invoice({ type: 'insert', values: { id: 1, amount: 1, x: 1 } })), 'UNKNOWN_COLUMN');
    assert.equal(await refused(invoice({ type: 'insert', values: { id: 1, amount: 'ten' } })), 'VALIDATION_FAILED');
    const mainOnly = await t.client('main-only', ['ledger_lines']);
    await assert.rejects(
      operations.createMany(mainOnly, [invoice({ type: 'insert', values: { id: 1, amount: 1 } })]),
      (error: BatchError) => error.code === 'FORBIDDEN',
    );
  });

  it('takes a bare name as the first of its targetSchemas that has the table, as search_path would', async () => {
    await billing.query(`DROP SCHEMA IF EXISTS first CASCADE; DROP SCHEMA IF EXISTS second CASCADE;
      CREATE SCHEMA first; CREATE SCHEMA second;
      CREATE TABLE second.only_second (id int PRIMARY KEY); CREATE TABLE first.both (id int PRIMARY KEY);
      CREATE TABLE second.both (id int PRIMARY KEY)`);
    const url = sharedDatabaseUrl(billingName);
    const schemas = await t.withConfig({
      BATCH_DATABASES: JSON.stringify({ billing: { url, targetSchemas: ['first', 'second'] } }),
    });
    try {
      const created = await schemas.get(OperationService).createMany(caller, [
        { target: 'billing:only_second', type: 'insert', values: { id: 1 } },
        { target: 'billing:both', type: 'insert', values: { id: 2 } },
      ]);
      const named = await Promise.all(created.map(async (op) => (await operations.get(caller, op.id)).target));
      assert.deepEqual(named, ['billing:second.only_second', 'billing:first.both'], 'the table each resolved to');
      for (let i = 0; (await schemas.get(ChunkStep).execute()).read > 0; i++) assert.ok(i < 50, 'the queue drains');
      assert.deepEqual(
        (await states(created.map((op) => op.id))).map((s) => [s.status, s.rows_affected]),
        [
          ['COMPLETED', 1],
          ['COMPLETED', 1],
        ],
      );
      const { rows } = await billing.query(`SELECT 'second.only_second' AS t, id FROM second.only_second
        UNION ALL SELECT 'first.both', id FROM first.both
        UNION ALL SELECT 'second.both', id FROM second.both ORDER BY id`);
      assert.deepEqual(rows, [
        { t: 'second.only_second', id: 1 },
        { t: 'first.both', id: 2 },
      ]);
    } finally {
      await schemas.close();
      await billing.query(`DROP SCHEMA first CASCADE; DROP SCHEMA second CASCADE`);
    }
  });

  it("reaches a table of the service's own database whose name holds a colon with main: before it", async () => {
    await t.db.query(`DROP TABLE IF EXISTS "odd:name"; CREATE TABLE "odd:name" (id int PRIMARY KEY)`);
    const anywhere = await t.client('colons', ['*']);
    try {
      // without main: the text before the colon names a database, and there is none named "odd"
      await assert.rejects(
        operations.createMany(anywhere, [{ target: 'odd:name', type: 'insert', values: { id: 9 } }]),
        (error: BatchError) => error.code === 'UNKNOWN_TARGET',
      );
      const created = await operations.createMany(anywhere, [
        { target: 'main:odd:name', type: 'insert', values: { id: 1 } },
        { target: 'main:public.odd:name', type: 'insert', values: { id: 2 } },
      ]);
      // the name an answer spells it with reaches it again
      const spelled = (await operations.get(anywhere, created[0].id)).target;
      created.push(
        ...(await operations.createMany(anywhere, [{ target: spelled, type: 'insert', values: { id: 3 } }])),
      );
      await drain();
      assert.deepEqual(
        (await states(created.map((op) => op.id))).map((s) => [s.status, s.rows_affected]),
        Array(3).fill(['COMPLETED', 1]),
      );
      assert.deepEqual(await t.db.query(`SELECT id FROM public."odd:name" ORDER BY id`), [
        { id: 1 },
        { id: 2 },
        { id: 3 },
      ]);
    } finally {
      await t.db.query(`DROP TABLE "odd:name"`);
    }
  });

  it('says a database whose every connection is at work up', async () => {
    const named = t.get(NamedDatabases);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const busy = Array.from({ length: named.get('billing')!.poolSize }, () =>
      named.using('billing', async (connection) => {
        await connection.query('SELECT 1');
        await released;
      }),
    );
    try {
      await named.checkAll();
      assert.equal(named.get('billing')!.up, true);
    } finally {
      release();
      await Promise.all(busy);
    }
  });

  it('leaves the operations of a database no longer configured pending, and says so in /health', async () => {
    const created = await operations.createMany(caller, [invoice({ type: 'insert', values: { id: 1, amount: 1 } })]);
    const without = await t.withConfig({ BATCH_DATABASES: '{}' });
    try {
      assert.equal((await without.get(ChunkStep).execute()).read, 0, 'nothing claimed for it');
      assert.deepEqual(
        (await states([created[0].id])).map((s) => s.status),
        ['PENDING'],
      );
      const health = await without.get(NamedDatabasesHealthIndicator).check('databases');
      assert.deepEqual(health, { databases: { status: 'down', billing: 'not configured: its operations wait' } });
    } finally {
      await without.close();
    }
    await drain();
    assert.deepEqual(
      (await states([created[0].id])).map((s) => s.status),
      ['COMPLETED'],
      'applied once it is back',
    );
  });

  it('settles a chunk whose worker stopped after it applied there from the ledger, without applying it again', async () => {
    await billing.query(`INSERT INTO invoices VALUES (1, 0, null)`);
    const created = await operations.createMany(
      caller,
      Array.from({ length: 10 }, () => invoice({ type: 'increment', key: { id: 1 }, values: { amount: 1 } })),
    );
    // as a worker does, up to its stop: claimed and prepared here, applied there with its ledger row, not settled
    const prepared = await t.get(Database).transaction(async (tx) => {
      const chunk = await t.get(ChunkClaimer).claim(tx, 1000);
      return t.get(PreparedChunks).prepare(tx, 'billing', chunk);
    });
    await (step as unknown as { applyElsewhere(p: typeof prepared): Promise<unknown> }).applyElsewhere(prepared);
    assert.equal((await billing.query(`SELECT amount::int AS n FROM invoices`)).rows[0].n, 10);
    assert.deepEqual(
      [...new Set((await states(created.map((op) => op.id))).map((s) => s.status))],
      ['PENDING'],
      'not settled yet',
    );
    await assert.rejects(operations.cancel(caller, created[0].id), (error: BatchError) => error.code === 'CONFLICT');
    await operations.createMany(caller, [invoice({ type: 'increment', key: { id: 1 }, values: { amount: 100 } })]);
    assert.equal((await step.execute()).read, 0, 'its target is not claimed while it is prepared and held');

    await drainAfterLeases();
    assert.equal((await billing.query(`SELECT amount::int AS n FROM invoices`)).rows[0].n, 110, 'each increment once');
    assert.deepEqual(
      (await states(created.map((op) => op.id))).map((s) => s.status),
      Array(10).fill('COMPLETED'),
    );
  });

  it('never claims operations of a chunk prepared after the claim read its targets, before it locked them', async () => {
    await billing.query(`INSERT INTO invoices VALUES (1, 0, null)`);
    const created = await operations.createMany(
      caller,
      Array.from({ length: 10 }, () => invoice({ type: 'increment', key: { id: 1 }, values: { amount: 1 } })),
    );
    const [db, claimer, prepared] = [t.get(Database), t.get(ChunkClaimer), t.get(PreparedChunks)];
    const prepare = () => db.transaction(async (tx) => prepared.prepare(tx, 'billing', await claimer.claim(tx, 1000)));
    // worker B reads the targets; worker A claims and prepares the chunk and commits; then B claims
    let first: Awaited<ReturnType<typeof prepare>> | undefined;
    const second = await db.transaction(async (tx) => {
      const query = tx.query.bind(tx) as (...args: unknown[]) => Promise<unknown>;
      tx.query = (async (...args: unknown[]) => {
        const result = await query(...args);
        if ((args[0] as { name?: string }).name === 'chunk-targets') first ??= await prepare();
        return result;
      }) as typeof tx.query;
      try {
        return await claimer.claim(tx, 1000);
      } finally {
        tx.query = query as typeof tx.query;
      }
    });
    assert.equal(first?.chunk.length, 10, "worker A's chunk");
    assert.deepEqual(second, [], 'nothing for worker B');
    await drainAfterLeases();
    assert.equal((await billing.query(`SELECT amount::int AS n FROM invoices`)).rows[0].n, 10, 'each increment once');
    assert.deepEqual(
      (await states(created.map((op) => op.id))).map((s) => s.status),
      Array(10).fill('COMPLETED'),
    );
  });

  it('applies again a chunk prepared whose worker stopped before it applied there', async () => {
    await billing.query(`INSERT INTO invoices VALUES (1, 0, null)`);
    const created = await operations.createMany(
      caller,
      Array.from({ length: 5 }, () => invoice({ type: 'increment', key: { id: 1 }, values: { amount: 2 } })),
    );
    await t.get(Database).transaction(async (tx) => {
      const chunk = await t.get(ChunkClaimer).claim(tx, 1000);
      return t.get(PreparedChunks).prepare(tx, 'billing', chunk);
    });
    await drainAfterLeases();
    assert.equal((await billing.query(`SELECT amount::int AS n FROM invoices`)).rows[0].n, 10);
    assert.deepEqual(
      (await states(created.map((op) => op.id))).map((s) => s.status),
      Array(5).fill('COMPLETED'),
    );
  });
});

/** A worker applying a chunk there for longer than BATCH_CHUNK_LEASE_MS keeps it: no other takes it over meanwhile. */
describe('a chunk for another database, held while it applies', () => {
  const billingName = uniqueName('billing');
  let billing: Client;
  let t: TestApp;

  after(async () => {
    await t?.close();
    await billing?.end();
    await dropDatabase(billingName);
  });

  it('renews its lease while it applies for longer than the lease', async () => {
    await createDatabase(billingName);
    billing = new Client(dbClientConfig(billingName));
    await billing.connect();
    await billing.query(`CREATE TABLE invoices ${INVOICES};
      CREATE FUNCTION slowly() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(2.5); RETURN NULL; END $$;
      CREATE TRIGGER slowly AFTER INSERT ON invoices FOR EACH STATEMENT EXECUTE FUNCTION slowly()`);
    t = await createTestApp({
      BATCH_DATABASES: JSON.stringify({ billing: sharedDatabaseUrl(billingName) }),
      BATCH_CHUNK_LEASE_MS: '1000',
    });
    const caller = await t.client('accounts', ['billing:*']);
    const created = await t.get(OperationService).createMany(
      caller,
      [1, 2, 3].map((id) => ({ target: 'billing:invoices', type: 'insert' as const, values: { id, amount: id } })),
    );
    const applying = t.get(ChunkStep).execute();
    await new Promise((resolve) => setTimeout(resolve, 1800));
    assert.equal(await t.get(PreparedChunks).takeOver(['billing']), null, 'still held by the worker applying it');
    assert.equal((await applying).read, 3);
    const settled = await t.db.query<{ status: string }>(
      `SELECT status FROM batch.operation_states WHERE id = ANY ($1)`,
      [created.map((op) => op.id)],
    );
    assert.deepEqual(
      settled.map((s) => s.status),
      ['COMPLETED', 'COMPLETED', 'COMPLETED'],
    );
  });
});

/**
 * A worker takes over a chunk whose lease ran out while its first worker still applies it there (renewals that did
 * not get through): it waits for the first one's commit there and settles from its ledger row, whatever that
 * database sets for its sessions.
 */
describe('a chunk taken over while its first worker still applies it there', () => {
  for (const setting of [`lock_timeout = '500ms'`, `default_transaction_isolation = 'repeatable read'`])
    it(`applies it once where the database sets ${setting}`, async () => {
      const billingName = uniqueName('billing');
      await createDatabase(billingName);
      const billing = new Client(dbClientConfig(billingName));
      await billing.connect();
      let a: TestApp | undefined;
      let b: TestApp | undefined;
      try {
        // the first chunk's statement sleeps past the lease
        await billing.query(`CREATE TABLE invoices ${INVOICES}; INSERT INTO invoices VALUES (1, 0, null);
          CREATE FUNCTION slowly() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF (SELECT count(*) FROM batch_ledger.applied_chunks) < 2 THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$;
          CREATE TRIGGER slowly AFTER UPDATE ON invoices FOR EACH STATEMENT EXECUTE FUNCTION slowly();
          ALTER DATABASE "${billingName}" SET ${setting}`);
        a = await createTestApp({
          BATCH_DATABASES: JSON.stringify({ billing: sharedDatabaseUrl(billingName) }),
          BATCH_CHUNK_LEASE_MS: '1000',
        });
        b = await a.withConfig({});
        const caller = await a.client('accounts', ['billing:*']);
        const created = await a.get(OperationService).createMany(
          caller,
          Array.from({ length: 10 }, () => ({
            target: 'billing:invoices',
            type: 'increment' as const,
            key: { id: 1 },
            values: { amount: 1 },
          })),
        );
        a.get(PreparedChunks).renew = async () => undefined;
        const first = a.get(ChunkStep).execute();
        await new Promise((resolve) => setTimeout(resolve, 1500));
        const second = await b.get(ChunkStep).execute();
        assert.equal(second.read, 10, 'taken over, settled from the ledger');
        await first;
        await a.db.query(`DELETE FROM batch.holds`);
        while ((await b.get(ChunkStep).execute()).read > 0);
        assert.equal((await billing.query(`SELECT amount::int AS n FROM invoices`)).rows[0].n, 10, 'applied once');
        const states = await a.db.query<{ status: string }>(
          `SELECT status FROM batch.operation_states WHERE id = ANY ($1)`,
          [created.map((op) => op.id)],
        );
        assert.deepEqual(
          states.map((s) => s.status),
          Array(10).fill('COMPLETED'),
        );
      } finally {
        await b?.close();
        await a?.close();
        await billing.end();
        await dropDatabase(billingName);
      }
    });
});
