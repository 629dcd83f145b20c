import fc from 'fast-check';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ICreateBatchOperationRequest, JsonValue } from '../../src/interfaces/operation.interfaces';
import { BatchError } from '../../src/services/batch-error';
import { ChunkClaimer } from '../../src/services/engine/chunk-claimer.service';
import { StatementApplier } from '../../src/services/engine/statement-applier.service';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { Database } from '../../src/services/storage/database';
import { OperationService } from '../../src/services/ingest/operation.service';
import { createTestApp, TestApp } from '../support/app-context';
import { Client } from 'pg';
import { dbClientConfig, sharedDatabaseUrl } from '../support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../support/test-database';

/**
 * The proof of sequential equivalence (docs/engine.md): random streams of all five operation types over a small key space, with
 * failing operations mixed in, pushed through the real service path (create-time validation, ingest, chunk
 * step with random chunk and statement sizes) must leave the same tables and the same outcomes as applying
 * the same stream one operation at a time, in id order, each in its own transaction.
 *
 * `PROPERTY_RUNS=2000 PROPERTY_SEED=7 npm run test:property` runs it longer.
 */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 100);
const SEED = Number(process.env.PROPERTY_SEED ?? 20261121);

const SCHEMA = (schema: string) => `
  CREATE SCHEMA ${schema};
  CREATE TABLE ${schema}.parents (id int PRIMARY KEY);
  CREATE TABLE ${schema}.items (
    id int PRIMARY KEY,
    code text UNIQUE,
    qty int NOT NULL DEFAULT 0 CHECK (qty >= 0),
    price numeric(6,2),
    note varchar(8),
    parent_id int REFERENCES ${schema}.parents (id),
    addr inet,
    label text
  );
  CREATE TABLE ${schema}.counters (name text PRIMARY KEY, n int NOT NULL DEFAULT 0 CHECK (n < 10));
  CREATE TABLE ${schema}.tallies (name text PRIMARY KEY, n smallint NOT NULL DEFAULT 0, amount numeric(4,1), tag text);`;

const RESET = (schema: string) => `
  TRUNCATE ${schema}.items, ${schema}.counters, ${schema}.parents, ${schema}.tallies;
  ALTER TABLE ${schema}.items ALTER COLUMN label DROP NOT NULL;
  ALTER TABLE ${schema}.tallies ALTER COLUMN tag DROP NOT NULL;
  INSERT INTO ${schema}.tallies VALUES ('x', 1, 1.0, 'seed'), ('y', 0, NULL, 'seed'), ('z', -5, 0.5, 'seed');
  INSERT INTO ${schema}.parents VALUES (1), (2), (3);
  INSERT INTO ${schema}.items (id, code, qty, label) VALUES (1, 'a', 1, 'seed'), (2, 'b', 0, 'seed');
  INSERT INTO ${schema}.counters (name, n) VALUES ('x', 8);`;

// ---- generators: a small key space, so that operations collide; values that fail only in the database ----
const id = fc.integer({ min: 1, max: 5 });
const code = fc.constantFrom('a', 'b', 'c');
const qty = fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constant(2_000_000_000));
const price = fc.constantFrom<JsonValue>(null, 1.5, '12.345', 9999.99);
const note = fc.constantFrom<JsonValue>(null, 'x', 'hello');
const parentId = fc.constantFrom<JsonValue>(null, 1, 3, 4); // 4 has no parent: foreign-key violation
const addr = fc.constantFrom<JsonValue>(null, '10.0.0.1', 'bogus'); // inet is checked by the database only: a bad cast
const label = fc.constantFrom<JsonValue>('L', null); // the column becomes NOT NULL after create: not-null violation

const itemColumns = { code, qty, price, note, parent_id: parentId, addr, label };
const itemKey = fc.oneof(
  id.map((v) => ({ id: v })),
  code.map((v) => ({ code: v })),
);
const counterName = fc.constantFrom('x', 'y', 'z');

const itemOperation: fc.Arbitrary<ICreateBatchOperationRequest> = fc.oneof(
  fc
    .record({ id, ...itemColumns }, { requiredKeys: ['id'] })
    .map((values) => ({ target: 'items', type: 'insert' as const, values })),
  fc
    .tuple(fc.record({ id, ...itemColumns }, { requiredKeys: ['id', 'code'] }), fc.boolean())
    .map(([values, byCode]) => ({
      target: 'items',
      type: 'upsert' as const,
      values,
      ...(byCode ? { conflictKey: ['code'] } : {}),
    })),
  fc
    .tuple(itemKey, fc.record(itemColumns, { requiredKeys: [] }))
    .filter(([, values]) => Object.keys(values).length > 0)
    .map(([key, values]) => ({ target: 'items', type: 'update' as const, key, values })),
  itemKey.map((key) => ({ target: 'items', type: 'delete' as const, key })),
  fc
    .tuple(itemKey, qty)
    .map(([key, delta]) => ({ target: 'items', type: 'increment' as const, key, values: { qty: delta } })),
);

const counterOperation: fc.Arbitrary<ICreateBatchOperationRequest> = fc.oneof(
  fc
    .tuple(counterName, fc.integer({ min: -2, max: 12 }))
    .map(([name, n]) => ({ target: 'counters', type: 'upsert' as const, values: { name, n } })),
  fc
    .tuple(counterName, fc.integer({ min: -1, max: 4 }))
    .map(([name, n]) => ({ target: 'counters', type: 'increment' as const, key: { name }, values: { n } })),
  counterName.map((name) => ({ target: 'counters', type: 'delete' as const, key: { name } })),
  counterName.map((name) => ({ target: 'counters', type: 'insert' as const, values: { name } })),
);

// Mostly one priority; where they differ, higher goes first among operations pending together (all are, here).
const priority = fc.constantFrom(0, 0, 0, 0, 1, -1);
const stream = fc.array(
  fc
    .tuple(fc.oneof({ weight: 4, arbitrary: itemOperation }, { weight: 1, arbitrary: counterOperation }), priority)
    .map(([op, p]) => (p ? { ...op, priority: p } : op)),
  { minLength: 1, maxLength: 40 },
);
/**
 * Streams a chunk takes as rounds (batch.claim): one table, one unique key, one client; inserts, updates and increments,
 * or updates, increments and deletes; checks, overflows and duplicate rows failing among them. On `tallies`, which has
 * no check constraint, a chunk's successive rounds of updates and increments are folded into one change of each row
 * (foldRounds): there overflows and rounding of a numeric(4,1) at each step, and a column made NOT NULL after create.
 */
const tallyName = fc.constantFrom('x', 'y', 'z');
const roundsOn: Record<'counters' | 'tallies', (withDeletes: boolean) => fc.Arbitrary<ICreateBatchOperationRequest>> = {
  counters: (withDeletes: boolean) =>
    fc.oneof(
      fc
        .tuple(counterName, fc.integer({ min: -1, max: 4 }))
        .map(([name, n]) => ({ target: 'counters', type: 'increment' as const, key: { name }, values: { n } })),
      fc
        .tuple(counterName, fc.oneof(fc.integer({ min: -2, max: 12 }), fc.constant(2_000_000_000)))
        .map(([name, n]) => ({ target: 'counters', type: 'update' as const, key: { name }, values: { n } })),
      withDeletes
        ? counterName.map((name) => ({ target: 'counters', type: 'delete' as const, key: { name } }))
        : fc
            .tuple(counterName, fc.integer({ min: 0, max: 12 }))
            .map(([name, n]) => ({ target: 'counters', type: 'insert' as const, values: { name, n } })),
    ),
  tallies: (withDeletes: boolean) =>
    fc.oneof(
      fc
        .tuple(
          tallyName,
          fc.record(
            { n: fc.constantFrom(-1, 3, 5, 7, 30_000), amount: fc.constantFrom(0.05, 0.15, 1, 2.5, 999.9) },
            { requiredKeys: [] },
          ),
        )
        .filter(([, values]) => Object.keys(values).length > 0)
        .map(([name, values]) => ({ target: 'tallies', type: 'increment' as const, key: { name }, values })),
      fc
        .tuple(
          tallyName,
          fc.record(
            {
              n: fc.constantFrom(0, 7, 32_000),
              amount: fc.constantFrom(null, 2.5, 10),
              tag: fc.constantFrom('t', 'u', 'v', 'w', null),
            },
            { requiredKeys: [] },
          ),
        )
        .filter(([, values]) => Object.keys(values).length > 0)
        .map(([name, values]) => ({ target: 'tallies', type: 'update' as const, key: { name }, values })),
      withDeletes
        ? tallyName.map((name) => ({ target: 'tallies', type: 'delete' as const, key: { name } }))
        : fc
            .tuple(tallyName, fc.constantFrom<JsonValue>('t', null))
            .map(([name, tag]) => ({ target: 'tallies', type: 'insert' as const, values: { name, tag } })),
    ),
};
const roundsStream = fc
  .tuple(fc.constantFrom('counters' as const, 'tallies' as const), fc.boolean())
  .chain(([table, withDeletes]) => fc.array(roundsOn[table](withDeletes), { minLength: 1, maxLength: 40 }));
const MAX_STATEMENT_ROWS = 8;
const chunking = fc.record({
  limits: fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }),
  statementMaxRows: fc.integer({ min: 1, max: MAX_STATEMENT_ROWS }),
});

interface Outcome {
  status: string;
  rowsAffected: number | null;
  code: string | null;
}

equivalence('main', RUNS);
// the same through the three commits of a chunk for another database (its values staged there, its ledger row)
equivalence('another database', Math.ceil(RUNS / 4));

/**
 * The property, the batched tables in the service's own database (`main`) or in another database of BATCH_DATABASES
 * on the same server; the reference tables are always in the service's own.
 */
function equivalence(where: 'main' | 'another database', runs: number) {
  describe(`sequential equivalence in ${where} (property, real PostgreSQL)`, () => {
    let t: TestApp;
    let operations: OperationService;
    /** A chunk step per statement size (AppConfig is read-only), index = BATCH_STATEMENT_MAX_ROWS. */
    const engines: TestApp[] = [];
    let client: AuthenticatedClient;
    const otherName = uniqueName('property_other');
    let other: Client | null = null;
    /** The batched tables' database, and their names' prefix there. */
    const batched = {
      prefix: where === 'main' ? '' : 'other:',
      query: async (sql: string) => (other ? (await other.query(sql)).rows : t.db.query(sql)),
    };

    before(async () => {
      // nine apps at once (one per statement size): small pools, within the server's connections
      let env: Record<string, string> = { BATCH_TARGET_SCHEMAS: 'batched', BATCH_CATALOG_TTL: '0', DB_POOL_SIZE: '3' };
      if (where !== 'main') {
        await createDatabase(otherName);
        other = new Client(dbClientConfig(otherName));
        await other.connect();
        const url = sharedDatabaseUrl(otherName);
        env = { ...env, BATCH_DATABASES: JSON.stringify({ other: { url, poolSize: 2, targetSchemas: ['batched'] } }) };
      }
      t = await createTestApp(env);
      await batched.query(SCHEMA('batched'));
      await t.db.query(SCHEMA('reference'));
      operations = t.get(OperationService);
      for (let rows = 1; rows <= MAX_STATEMENT_ROWS; rows++)
        engines[rows] = await t.withConfig({ BATCH_STATEMENT_MAX_ROWS: String(rows) });
      client = await t.client('property');
    });
    after(async () => {
      for (const engine of engines.filter(Boolean)) await engine.close();
      await t.close();
      if (other) {
        await other.end();
        await dropDatabase(otherName);
      }
    });

    /** The meaning of each type, one operation in its own transaction (autocommit), written independently of the writer. */
    async function applyOneAtATime(op: ICreateBatchOperationRequest): Promise<Outcome> {
      const table = `reference.${op.target}`;
      const values = op.values ?? {};
      const key = op.key ?? {};
      const columns = Object.keys(values);
      const params = [...Object.values(values), ...Object.values(key)];
      const where = Object.keys(key)
        .map((c, i) => `${c} = $${columns.length + i + 1}`)
        .join(' AND ');
      let sql: string;
      switch (op.type) {
        case 'insert':
          sql = `INSERT INTO ${table} (${columns}) VALUES (${columns.map((_, i) => `$${i + 1}`)})`;
          break;
        case 'upsert': {
          const conflictKey = op.conflictKey ?? [op.target === 'items' ? 'id' : 'name'];
          const others = columns.filter((c) => !conflictKey.includes(c));
          sql =
            `INSERT INTO ${table} (${columns}) VALUES (${columns.map((_, i) => `$${i + 1}`)}) ON CONFLICT (${conflictKey}) ` +
            (others.length ? `DO UPDATE SET ${others.map((c) => `${c} = EXCLUDED.${c}`)}` : 'DO NOTHING');
          break;
        }
        case 'update':
          sql = `UPDATE ${table} SET ${columns.map((c, i) => `${c} = $${i + 1}`)} WHERE ${where}`;
          break;
        case 'increment':
          sql = `UPDATE ${table} SET ${columns.map((c, i) => `${c} = ${c} + $${i + 1}`)} WHERE ${where}`;
          break;
        case 'delete':
          sql = `DELETE FROM ${table} WHERE ${where}`;
          break;
      }
      try {
        const result = await t.get(Database).pool.query(sql, params);
        return { status: 'COMPLETED', rowsAffected: result.rowCount, code: null };
      } catch (error) {
        return { status: 'FAILED', rowsAffected: null, code: (error as { code: string }).code };
      }
    }

    async function table(schema: string, name: string) {
      const sql = `SELECT * FROM ${schema}.${name} ORDER BY 1`;
      return schema === 'batched' ? batched.query(sql) : t.db.query(sql);
    }

    /** Applies `ops` through the service and one at a time, and compares the outcomes and the tables. */
    async function sameAsOneAtATime(
      ops: ICreateBatchOperationRequest[],
      { limits, statementMaxRows }: { limits: number[]; statementMaxRows: number },
    ): Promise<void> {
      await t.db.query(
        `TRUNCATE batch.operations, batch.streams, batch.stream_runs, batch.deferred, batch.outcomes; DELETE FROM batch.outbox; ${RESET('reference')}`,
      );
      await batched.query(RESET('batched'));
      // Through the real create path; what create-time validation refuses is neither stored nor applied.
      const accepted: { id: string; op: ICreateBatchOperationRequest }[] = [];
      for (const op of ops) {
        try {
          accepted.push({
            id: (await operations.create(client, { ...op, target: batched.prefix + op.target })).id,
            op,
          });
        } catch (error) {
          if (!(error instanceof BatchError)) throw error;
        }
      }
      for (const [schema, query] of [
        ['batched', batched.query],
        ['reference', (sql: string) => t.db.query(sql)],
      ] as const) {
        await query(`ALTER TABLE ${schema}.tallies ALTER COLUMN tag SET NOT NULL`);
        await query(`ALTER TABLE ${schema}.items ALTER COLUMN label SET NOT NULL`).catch(() =>
          query(
            `UPDATE ${schema}.items SET label = 'seed'; ALTER TABLE ${schema}.items ALTER COLUMN label SET NOT NULL`,
          ),
        );
      }

      const step = engines[statementMaxRows].get(ChunkStep);
      for (let i = 0; ; i++) if ((await step.execute(limits[i % limits.length])).read === 0) break;

      const expected = new Map<string, Outcome>();
      const inOrderOfApplication = [...accepted].sort((a, b) => (b.op.priority ?? 0) - (a.op.priority ?? 0)); // stable: id order within a priority
      for (const { id, op } of inOrderOfApplication) expected.set(id, await applyOneAtATime(op));
      const actual = await t.db.query<{ status: string; rows_affected: number | null; error_code: string | null }>(
        `SELECT status, rows_affected, error_code FROM batch.operation_states WHERE id = ANY($1::bigint[]) ORDER BY id`,
        [accepted.map((a) => a.id)],
      );
      assert.deepEqual(
        actual.map((a) => ({ status: a.status, rowsAffected: a.rows_affected, code: a.error_code })),
        accepted.map((a) => expected.get(a.id)),
        'every operation ends as it would one at a time',
      );
      assert.deepEqual(await table('batched', 'items'), await table('reference', 'items'), 'items');
      assert.deepEqual(await table('batched', 'counters'), await table('reference', 'counters'), 'counters');
      assert.deepEqual(await table('batched', 'tallies'), await table('reference', 'tallies'), 'tallies');
    }

    it(`holds for ${runs} random streams (seed ${SEED})`, async () => {
      await fc.assert(fc.asyncProperty(stream, chunking, sameAsOneAtATime), {
        numRuns: runs,
        seed: SEED,
        includeErrorInReport: true,
      });
    });

    it(`holds for ${runs} random streams taken as rounds (seed ${SEED})`, async () => {
      let rounds = 0; // claimed, over all runs: the streams are taken as rounds, not planned one operation at a time
      let folds = 0; // rounds applied as one change of each row
      for (const engine of engines.filter(Boolean)) {
        const claimer = engine.get(ChunkClaimer);
        const read = claimer.claim.bind(claimer);
        claimer.claim = async (tx, limit) => {
          const claimed = await read(tx, limit);
          rounds += claimed.filter((op) => op.ids !== undefined).length;
          return claimed;
        };
        const applier = engine.get(StatementApplier);
        const applyFolded = applier.applyFolded.bind(applier);
        applier.applyFolded = async (tx, plans) => {
          const missed = await applyFolded(tx, plans);
          if (missed !== null) folds += 1;
          return missed;
        };
      }
      await fc.assert(fc.asyncProperty(roundsStream, chunking, sameAsOneAtATime), {
        numRuns: runs,
        seed: SEED,
        includeErrorInReport: true,
      });
      assert.ok(rounds >= runs, `${rounds} rounds claimed`);
      assert.ok(folds >= runs / 10, `${folds} folds applied`);
    });
  });
}
