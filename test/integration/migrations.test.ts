import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { DataSource, DataSourceOptions } from 'typeorm';
import { PendingAndOutcomes1764500000000 } from '../../src/migrations/1764500000000-pending-and-outcomes';
import { NotificationsWrittenWithChunks1764700000000 } from '../../src/migrations/1764700000000-notifications-written-with-chunks';
import { SettledRuns1764800000000 } from '../../src/migrations/1764800000000-settled-runs';
import { MessagesMadeWhenSent1764900000000 } from '../../src/migrations/1764900000000-messages-made-when-sent';
import { RequestsRecordedOnce1765000000000 } from '../../src/migrations/1765000000000-requests-recorded-once';
import { OperationsTakenFromStreams1765100000000 } from '../../src/migrations/1765100000000-operations-taken-from-streams';
import { RequestsWithTheirIds1765200000000 } from '../../src/migrations/1765200000000-requests-with-their-ids';
import { Jobs1766100000000 } from '../../src/migrations/1766100000000-jobs';
import { MessagesMadeByTheRelay1766490000000 } from '../../src/migrations/1766490000000-messages-made-by-the-relay';
import { JobOperator } from '../../src/services/jobs/job-operator.service';
import { BatchError } from '../../src/services/batch-error';
import { unsentMessages } from '../../src/services/outbox/outbox-relay';
import type { IOperationsSettledEvent } from '../../src/interfaces/operation.interfaces';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import {
  applyDefinitions,
  Database,
  dataSourceOptions,
  migrate,
  MIGRATIONS,
  prepareMigrations,
} from '../../src/services/storage/database';
import { AREAS, describeSchema, newSchema, SCHEMA_FILE } from '../../scripts/schema';
import { readFileSync } from 'node:fs';
import { createTestApp, TestApp } from '../support/app-context';
import { createTestDatabase, dropDatabase, testConfig } from '../support/test-database';
import type { AppConfig } from '../../src/config/app-config';

/** The database of `config` with the migrations before `migration` applied: the schema an upgrade starts from. */
async function schemaBefore(config: AppConfig, migration: (typeof MIGRATIONS)[number]): Promise<DataSource> {
  const release = await prepareMigrations(config.db);
  const migrations = MIGRATIONS.slice(0, MIGRATIONS.indexOf(migration));
  return new DataSource({ ...dataSourceOptions(config), migrations } as DataSourceOptions)
    .initialize()
    .finally(release);
}

/** The client that the service before stored, granted every target: its id. */
async function oldClient(db: DataSource): Promise<string> {
  const [{ id }] = await db.query(
    `INSERT INTO batch.clients (name, api_key_hash, targets) VALUES ('old', 'hash', '{*}') RETURNING id`,
  );
  return String(id);
}

/** That client as the service authenticates it. */
const asOldClient = (id: string) => ({ id, name: 'old', admin: false, mayWrite: () => true }) as never;

/**
 * A test database to upgrade: `upgraded()` starts the service on it, which runs the migrations not applied yet; the
 * service and the database go after the tests.
 */
function databaseToUpgrade(): { config: AppConfig; upgraded(): Promise<TestApp> } {
  const config = testConfig();
  let app: TestApp | undefined;
  after(async () => {
    await app?.close();
    await dropDatabase(config.db.name).catch(() => undefined);
  });
  return { config, upgraded: async () => (app = await createTestApp({ DB_NAME: config.db.name })) };
}

describe('the schema in one place (real PostgreSQL)', () => {
  it('is docs/schema.sql: what the migrations and the definitions make of a new database', async () => {
    assert.equal(
      await newSchema(),
      readFileSync(SCHEMA_FILE, 'utf8'),
      'docs/schema.sql is not the schema the migrations make: run `npm run schema` and commit it',
    );
  });

  it('places every table, view and function in an area, each saying what it is for, or names what to do', async () => {
    const db = await createTestDatabase();
    try {
      const query = <T>(sql: string) => db.query<T>(sql);
      await db.query(`
        CREATE TABLE batch.scratch (id int);
        CREATE FUNCTION batch.scratch_size(n int) RETURNS int LANGUAGE sql AS 'SELECT n';
        CREATE SEQUENCE batch.scratch_numbers;
        COMMENT ON TABLE batch.holds IS NULL`);
      await assert.rejects(describeSchema(query), (error: Error) => {
        assert.deepEqual(error.message.split('\n').slice(1), [
          '- table batch.holds has no comment: say what it is for and who writes and reads it, ' +
            "COMMENT ON TABLE batch.holds IS '…', in the migration that creates it",
          '- table batch.scratch is in no area: add it to AREAS in scripts/schema.ts, where it belongs',
          '- table batch.scratch has no comment: say what it is for and who writes and reads it, ' +
            "COMMENT ON TABLE batch.scratch IS '…', in the migration that creates it",
          '- function batch.scratch_size(n integer) is in no area: add it to AREAS in scripts/schema.ts, where it belongs',
          '- function batch.scratch_size(n integer) has no comment: say what it does and who calls it, ' +
            "COMMENT ON FUNCTION batch.scratch_size(n integer) IS '…', in its definition (src/migrations/definitions)",
          '- sequence batch.scratch_numbers is of a kind that scripts/schema.ts does not write: teach describeSchema to write it',
        ]);
        return true;
      });

      await db.query(`
        DROP SEQUENCE batch.scratch_numbers;
        COMMENT ON TABLE batch.holds IS 'Held back.';
        COMMENT ON TABLE batch.scratch IS 'For the test''s sake.';
        COMMENT ON FUNCTION batch.scratch_size(int) IS 'Its size.'`);
      const scratch = { heading: 'Scratch', tables: ['scratch'], functions: ['scratch_size'] };
      await assert.rejects(
        describeSchema(query, [...AREAS, scratch, { heading: 'Gone', tables: ['gone', 'scratch'] }]),
        (error: Error) => {
          assert.deepEqual(error.message.split('\n').slice(1), [
            '- AREAS in scripts/schema.ts lists table batch.scratch 2 times: keep one',
            '- AREAS in scripts/schema.ts lists table batch.gone, which the schema does not have: remove it',
          ]);
          return true;
        },
      );
      const schema = await describeSchema(query, [...AREAS, scratch]);
      assert.match(
        schema,
        /\n-- Scratch\n-- =+\n\nCREATE TABLE batch.scratch \(\n {2}id integer\n\);\nCOMMENT ON TABLE batch.scratch IS 'For the test''s sake.';\n\nCREATE OR REPLACE FUNCTION batch.scratch_size\(n integer\)\n[^]*?\nCOMMENT ON FUNCTION batch.scratch_size\(n integer\) IS 'Its size.';\n$/,
      );
    } finally {
      await db.close();
    }
  });

  it('applies the definitions once after the migrations, and again only when they change', async () => {
    const config = testConfig();
    try {
      await migrate(config);
      const source = await new DataSource({ ...dataSourceOptions(config), migrationsRun: false }).initialize();
      try {
        const applied = async () =>
          (await source.query(`SELECT checksum, applied_at FROM batch.definitions`)) as object[];
        const first = await applied();
        assert.equal(first.length, 1);
        await source.query(`DROP VIEW batch.operation_states`); // as if a definition had changed since
        await applyDefinitions(source);
        assert.deepEqual(await applied(), first, 'nothing applied while the files are the ones applied last');
        await source.query(`UPDATE batch.definitions SET checksum = 'older'`);
        await applyDefinitions(source);
        assert.equal((await source.query(`SELECT count(*)::int AS n FROM batch.operation_states`))[0].n, 0);
        assert.notDeepEqual(await applied(), first);
      } finally {
        await source.destroy();
      }
    } finally {
      await dropDatabase(config.db.name);
    }
  });
});

describe('migrations (real PostgreSQL)', () => {
  const config = testConfig();
  after(() => dropDatabase(config.db.name));

  it("moves TypeORM's table of applied migrations out of the targets' schema, and runs none twice", async () => {
    // The layout before: TypeORM's table in the search path's first schema, public, among the targets.
    let release = await prepareMigrations(config.db);
    const before = await new DataSource(dataSourceOptions(config)).initialize().finally(release);
    await before.query(`ALTER TABLE batch.migrations SET SCHEMA public`);
    await before.destroy();

    release = await prepareMigrations(config.db);
    const upgraded = await new DataSource(dataSourceOptions(config)).initialize().finally(release);
    try {
      const tables = await upgraded.query(`SELECT schemaname FROM pg_tables WHERE tablename = 'migrations'`);
      assert.deepEqual(tables, [{ schemaname: 'batch' }], 'moved, not copied');
      assert.equal(
        (await upgraded.query(`SELECT count(*)::int AS n FROM batch.migrations`))[0].n,
        MIGRATIONS.length,
        'none ran again',
      );
    } finally {
      await upgraded.destroy();
    }
  });
});

describe('upgrading a database with operations in it (real PostgreSQL)', () => {
  const { config, upgraded } = databaseToUpgrade();

  const RECOUNT = `SELECT client_id, target, status, count(*)::int AS n FROM batch.operation_states GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
  const KEPT = `SELECT client_id, target, status, sum(added - removed)::int AS n FROM batch.operation_counts GROUP BY 1, 2, 3 HAVING sum(added - removed) <> 0 ORDER BY 1, 2, 3`;

  it('moves the pending ones into the pending set and the settled ones into outcomes, then applies what is due', async () => {
    // The schema before the pending set: every operation one row, its status and outcome in it.
    const old = await schemaBefore(config, PendingAndOutcomes1764500000000);
    await old.query(`CREATE TABLE public.items (id int PRIMARY KEY, note text)`);
    const client = await oldClient(old);
    const [{ id: execution }] = await old.query(
      `INSERT INTO batch.executions (status, worker, started_at, ended_at) VALUES ('COMPLETED', 'w', now(), now()) RETURNING id`,
    );
    const insert = `INSERT INTO batch.operations (client_id, target, type, row_values, status, attempts, rows_affected, error_code, error_message, execution_id,
                                                  settled_at, not_before) VALUES ($1, 'public.items', 'insert', $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`;
    const rows: [
      object,
      string,
      number,
      number | null,
      string | null,
      string | null,
      string | null,
      Date | null,
      Date | null,
    ][] = [
      [{ id: 1, note: 'done' }, 'COMPLETED', 1, 1, null, null, execution, new Date(), null],
      [{ id: 1, note: 'dup' }, 'FAILED', 1, null, '23505', 'duplicate key', execution, new Date(), null],
      [{ id: 3 }, 'CANCELLED', 0, null, null, null, null, new Date(), null],
      [{ id: 4, note: 'due' }, 'PENDING', 0, null, null, null, null, null, null],
      [{ id: 5, note: 'later' }, 'PENDING', 0, null, null, null, null, null, new Date(Date.now() + 3_600_000)],
    ];
    const ids: string[] = [];
    for (const row of rows) ids.push((await old.query(insert, [client, ...row]))[0].id);
    const states = await old.query(
      `SELECT id, status, attempts, rows_affected, error_code, error_message, execution_id AS chunk_id, settled_at FROM batch.operations ORDER BY id`,
    );
    await old.destroy();

    const app = await upgraded(); // runs the rest of the migrations
    assert.deepEqual(
      await app.db.query(
        `SELECT id, status, attempts, rows_affected, error_code, error_message, chunk_id, settled_at FROM batch.operation_states ORDER BY id`,
      ),
      states,
      'every operation reads as it did',
    );
    assert.deepEqual(await app.db.query(`SELECT id, due_at IS NOT NULL AS scheduled FROM batch.deferred ORDER BY id`), [
      { id: ids[3], scheduled: false },
      { id: ids[4], scheduled: true },
    ]);
    assert.deepEqual(await app.db.query(KEPT), await app.db.query(RECOUNT), 'the counts carry over');
    assert.equal(
      (await app.get(ChunkStep).execute()).read,
      1,
      'the due one is applied, without planning stored for it',
    );
    assert.deepEqual(await app.db.query(`SELECT id, note FROM public.items ORDER BY id`), [{ id: 4, note: 'due' }]);
    assert.deepEqual(await app.db.query(KEPT), await app.db.query(RECOUNT));
  });
});

describe('notifications written with their chunk (real PostgreSQL)', () => {
  const config = testConfig();
  after(() => dropDatabase(config.db.name).catch(() => undefined));

  it('makes unsent references into their message, and keeps what pending operations echo', async () => {
    const db = await schemaBefore(config, NotificationsWrittenWithChunks1764700000000);
    try {
      await db.query(`INSERT INTO batch.clients (id, name, api_key_hash) VALUES (7, 'ünï "client"', 'hash')`);
      await db.query(
        `INSERT INTO batch.executions (id, status, worker, started_at, ended_at) VALUES (9, 'COMPLETED', 'w', now(), now())`,
      );
      await db.query(`
        INSERT INTO batch.operations (id, client_id, target, type, row_values, idempotency_key, label, shape, identity) VALUES
          (1, 7, 'public.items', 'insert', '{"id": 1}', 'key "1"', 'lab\\el', 's', '1'),
          (2, 7, 'public.items', 'update', '{"id": 2}', NULL, NULL, 's', '2'),
          (3, 7, 'public.items', 'insert', '{"id": 3}', 'k3', 'pending', 's', '3')`);
      await db.query(`
        INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, rows_affected, error_code, error_message, execution_id, settled_at) VALUES
          (1, 7, 'public.items', 'COMPLETED', 1, 1, NULL, NULL, 9, now()),
          (2, 7, 'public.items', 'FAILED', 2, NULL, '23514', 'violates "check" ✘', 9, now())`);
      await db.query(
        `INSERT INTO batch.pending (id, client_id, target, priority, shape, identity) VALUES (3, 7, 'public.items', 0, 's', '3')`,
      );
      const [{ id }] = await db.query(
        `INSERT INTO batch.outbox (routing_key, execution_id, client_id, ids) VALUES ('k', 9, 7, '{1,2}') RETURNING id`,
      );
      const [{ message }] = await db.query(`SELECT batch.settled_event($1)::text AS message`, [id]);
      assert.equal((JSON.parse(message) as { operations: unknown[] }).operations.length, 2);

      const runner = db.createQueryRunner();
      try {
        await new NotificationsWrittenWithChunks1764700000000().up(runner);
      } finally {
        await runner.release();
      }
      const [{ payload }] = await db.query(`SELECT payload FROM batch.outbox WHERE id = $1`, [id]);
      assert.deepEqual(JSON.parse(payload), JSON.parse(message), 'the message it would have been');
      assert.deepEqual(await db.query(`SELECT id, idempotency_key, label FROM batch.pending`), [
        { id: '3', idempotency_key: 'k3', label: 'pending' },
      ]);
      assert.deepEqual(
        await db.query(`SELECT proname FROM pg_proc WHERE proname = 'settled_event'`),
        [],
        'nothing makes messages later any more',
      );
    } finally {
      await db.destroy();
    }
  });
});

describe('completions recorded as runs (real PostgreSQL)', () => {
  const { config, upgraded } = databaseToUpgrade();

  it('reads the operations settled before as they were, and records new completions as runs', async () => {
    const old = await schemaBefore(config, SettledRuns1764800000000);
    await old.query(`CREATE TABLE public.items (id int PRIMARY KEY)`);
    const client = await oldClient(old);
    // as the service before stored them: each settled operation with its outcome row, counted by the triggers
    await old.query(
      `INSERT INTO batch.operations (id, client_id, target, type, row_values, shape, identity)
       SELECT g, $1, 'public.items', 'insert', jsonb_build_object('id', g), batch.shape_of('insert', jsonb_build_object('id', g), NULL, NULL), ''
         FROM generate_series(1, 6) g`,
      [client],
    );
    await old.query(`SELECT setval('batch.operations_id_seq', 6)`);
    await old.query(
      `INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, rows_affected, error_code, error_message, execution_id, settled_at) VALUES
         (1, $1, 'public.items', 'COMPLETED', 1, 1, NULL, NULL, 5, now()),
         (2, $1, 'public.items', 'COMPLETED', 1, 0, NULL, NULL, 5, now()),
         (3, $1, 'public.items', 'FAILED', 1, NULL, '23505', 'duplicate key', 5, now()),
         (4, $1, 'public.items', 'CANCELLED', 0, NULL, NULL, NULL, NULL, now())`,
      [client],
    );
    await old.query(
      `INSERT INTO batch.pending (id, client_id, target, priority, shape, identity)
       SELECT id, client_id, target, priority, shape, identity FROM batch.operations WHERE id IN (5, 6)`,
    );
    // the chunk's id was execution_id before the chunks were named so
    const STATES = (chunk: string) =>
      `SELECT id, status, attempts, rows_affected, error_code, ${chunk} AS chunk_id, settled_at FROM batch.operation_states ORDER BY id`;
    const states = await old.query(STATES('execution_id'));
    await old.destroy();

    const app = await upgraded(); // runs the rest of the migrations
    assert.deepEqual(await app.db.query(STATES('chunk_id')), states, 'every operation reads as it did');
    const RECOUNT = `SELECT client_id, target, status, count(*)::int AS n FROM batch.operation_states GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
    const KEPT = `SELECT client_id, target, status, sum(added - removed)::int AS n FROM batch.operation_counts GROUP BY 1, 2, 3 HAVING sum(added - removed) <> 0 ORDER BY 1, 2, 3`;

    const { chunkId, read } = await app.get(ChunkStep).execute();
    assert.equal(read, 2);
    assert.deepEqual(await app.db.query(`SELECT first_id, last_id, chunk_id FROM batch.settled_runs`), [
      { first_id: '5', last_id: '6', chunk_id: chunkId },
    ]);
    assert.deepEqual(
      await app.db.query(
        `SELECT id, status, attempts, rows_affected, chunk_id FROM batch.operation_states WHERE id >= '5' ORDER BY id`,
      ),
      ['5', '6'].map((id) => ({ id, status: 'COMPLETED', attempts: 1, rows_affected: 1, chunk_id: chunkId })),
    );
    assert.deepEqual(await app.db.query(KEPT), await app.db.query(RECOUNT), 'runs are counted');
  });
});

describe('messages made when they are sent (real PostgreSQL)', () => {
  const { config, upgraded } = databaseToUpgrade();

  it('sends a message written whole before as it is, and makes the text of those written since', async () => {
    const old = await schemaBefore(config, MessagesMadeWhenSent1764900000000);
    await old.query(`CREATE TABLE public.items (id int PRIMARY KEY)`);
    const written = '{"type":"operations.settled","client":"old","operations":[]}';
    await old.query(`INSERT INTO batch.outbox (routing_key, payload) VALUES ('operations.settled.old', $1)`, [written]);
    await old.destroy();

    const app = await upgraded(); // runs the rest of the migrations
    const client = await app.client('new');
    const [created] = await app
      .get(OperationService)
      .createMany(client, [{ target: 'items', type: 'insert', values: { id: 1 } }]);
    const { chunkId } = await app.get(ChunkStep).execute();
    const sent = await app.get(Database).transaction((tx) => unsentMessages(tx, 10, 10_000_000));
    assert.equal(sent[0].payload.toString(), written, 'as it was written');
    const made = JSON.parse(sent[1].payload.toString()) as IOperationsSettledEvent;
    assert.equal(made.executionId, chunkId);
    assert.deepEqual(made.operations, [
      {
        id: created.id,
        status: 'COMPLETED',
        rowsAffected: 1,
        error: null,
        target: 'public.items',
        type: 'insert',
        idempotencyKey: null,
        label: null,
      },
    ]);
  });
});

describe('requests recorded once (real PostgreSQL)', () => {
  const { config, upgraded } = databaseToUpgrade();

  it("finds a request stored before the upgrade by its operations' request keys, and stores nothing again", async () => {
    const old = await schemaBefore(config, RequestsRecordedOnce1765000000000);
    await old.query(`CREATE TABLE public.items (id int PRIMARY KEY)`);
    const client = await oldClient(old);
    // as the service before stored a request of two: a request key on each operation
    const stored = await old.query(
      `INSERT INTO batch.operations (client_id, target, type, row_values, request_key, shape, identity)
       SELECT $1, 'public.items', 'insert', jsonb_build_object('id', g), 'request-1#' || (g - 1), '', '' FROM generate_series(1, 2) g
       RETURNING id`,
      [client],
    );
    await old.query(
      `INSERT INTO batch.pending (id, client_id, target, priority, shape, identity) SELECT id, $1, 'public.items', 0, '', '' FROM batch.operations`,
      [client],
    );
    await old.destroy();

    const app = await upgraded(); // runs the rest of the migrations
    const again = await app.get(OperationService).createMany(
      asOldClient(client),
      [1, 2].map((id) => ({ target: 'items', type: 'insert' as const, values: { id } })),
      'request-1',
    );
    assert.deepEqual(
      again.map((r) => [r.id, r.duplicate]),
      stored.map((s: { id: string }) => [s.id, true]),
    );
    assert.equal((await app.db.query(`SELECT 1 FROM batch.operations`)).length, 2);
  });
});

describe('operations taken from streams (real PostgreSQL)', () => {
  const { config, upgraded } = databaseToUpgrade();

  it('keeps what was pending in the deferred set, starts each stream after it, and takes new operations from streams', async () => {
    const old = await schemaBefore(config, OperationsTakenFromStreams1765100000000);
    await old.query(`CREATE TABLE public.items (id int PRIMARY KEY, applied bigint GENERATED ALWAYS AS IDENTITY)`);
    const client = await oldClient(old);
    // as the service before stored them: 1-2 completed in a run, 3 failed, 4 cancelled, 5 retried (pending again),
    // 6 pending, 7 pending at priority 5, 8 scheduled; pending ones in the pending set, counted by its triggers
    await old.query(
      `INSERT INTO batch.operations (id, client_id, target, type, row_values, priority, not_before, shape, identity)
       SELECT g, $1, 'public.items', 'insert', jsonb_build_object('id', g), CASE WHEN g = 7 THEN 5 ELSE 0 END,
              CASE WHEN g = 8 THEN now() + interval '1 hour' END, batch.shape_of('insert', jsonb_build_object('id', g), NULL, NULL), ''
         FROM generate_series(1, 8) g`,
      [client],
    );
    await old.query(`SELECT setval('batch.operations_id_seq', 8)`);
    await old.query(
      `INSERT INTO batch.settled_runs (first_id, last_id, execution_id, settled_at) VALUES (1, 2, 5, now())`,
    );
    await old.query(
      `INSERT INTO batch.operation_counts (client_id, target, status, minute, added, removed) VALUES ($1, 'public.items', 'COMPLETED', now(), 2, 0)`,
      [client],
    );
    await old.query(
      `INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, error_code, error_message, execution_id, settled_at) VALUES
         (3, $1, 'public.items', 'FAILED', 1, '23505', 'duplicate key', 5, now()),
         (4, $1, 'public.items', 'CANCELLED', 0, NULL, NULL, NULL, now())`,
      [client],
    );
    await old.query(
      `INSERT INTO batch.pending (id, client_id, target, priority, due_at, attempts, shape, identity)
       SELECT id, client_id, target, priority, not_before, CASE WHEN id = 5 THEN 1 ELSE 0 END, shape, identity
         FROM batch.operations WHERE id >= 5`,
    );
    // the chunk's id was execution_id before the chunks were named so
    const STATES = (chunk: string) =>
      `SELECT id, status, attempts, rows_affected, error_code, ${chunk} AS chunk_id, settled_at FROM batch.operation_states ORDER BY id`;
    const states = await old.query(STATES('execution_id'));
    await old.destroy();

    const app = await upgraded(); // runs the rest of the migrations
    const RECOUNT = `SELECT client_id, target, status, count(*)::int AS n FROM batch.operation_states GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
    const KEPT = `SELECT client_id, target, status, sum(added - removed)::int AS n FROM batch.operation_counts GROUP BY 1, 2, 3 HAVING sum(added - removed) <> 0 ORDER BY 1, 2, 3`;
    assert.deepEqual(await app.db.query(STATES('chunk_id')), states, 'every operation reads as it did');
    assert.deepEqual(await app.db.query(KEPT), await app.db.query(RECOUNT), 'the counts carry over');
    assert.deepEqual(
      await app.db.query(`SELECT id FROM batch.deferred ORDER BY id`),
      [5, 6, 7, 8].map((id) => ({ id: String(id) })),
    );
    assert.deepEqual(
      await app.db.query(`SELECT target, priority, taken_through FROM batch.streams ORDER BY priority`),
      [
        { target: 'public.items', priority: 0, taken_through: '8' },
        { target: 'public.items', priority: 5, taken_through: '7' },
      ],
    );

    const caller = await app.client('new');
    const [created] = await app
      .get(OperationService)
      .createMany(caller, [{ target: 'items', type: 'insert', values: { id: 9 } }]);
    assert.equal((await app.get(ChunkStep).execute()).read, 4, 'the due ones of the deferred set, then the stream');
    assert.deepEqual(
      (await app.db.query<{ id: number }>(`SELECT id FROM public.items ORDER BY applied`)).map((r) => r.id),
      [7, 5, 6, 9],
      'priority first, then id',
    );
    assert.equal(
      (await app.db.query(`SELECT taken_through FROM batch.streams WHERE priority = 0`))[0].taken_through,
      created.id,
    );
    const [scheduled] = await app.db.query<{ id: string; status: string }>(
      `SELECT id, status FROM batch.operation_states WHERE id = 8`,
    );
    assert.equal(scheduled.status, 'PENDING', 'the scheduled one waits for its time');
    await app.get(OperationService).cancel({ ...caller, admin: true } as never, '8');
    assert.deepEqual(await app.db.query(`SELECT id FROM batch.deferred`), []);
    assert.deepEqual(await app.db.query(KEPT), await app.db.query(RECOUNT), 'and are kept since');
  });
});

describe('requests with the range of their ids (real PostgreSQL)', () => {
  const { config, upgraded } = databaseToUpgrade();

  it('finds what a request stored before the upgrade when it is delivered again, and stores nothing again', async () => {
    const old = await schemaBefore(config, RequestsWithTheirIds1765200000000);
    await old.query(`CREATE TABLE public.items (id int PRIMARY KEY)`);
    const client = await oldClient(old);
    // as the service before stored two requests of two, their operations interleaved
    const requests = await old.query(
      `INSERT INTO batch.requests (client_id, request_id) VALUES ($1, 'request-1'), ($1, 'request-2') RETURNING id`,
      [client],
    );
    const stored = await old.query(
      `INSERT INTO batch.operations (client_id, target, type, row_values, request_ref, request_index, shape, identity)
       SELECT $1, 'public.items', 'insert', jsonb_build_object('id', g), CASE WHEN g % 2 = 1 THEN $2 ELSE $3 END::bigint, (g - 1) / 2, '', ''
         FROM generate_series(1, 4) g
       RETURNING id`,
      [client, requests[0].id, requests[1].id],
    );
    await old.destroy();

    const app = await upgraded(); // runs the rest of the migrations
    const again = await app.get(OperationService).createMany(
      asOldClient(client),
      [2, 4].map((id) => ({ target: 'items', type: 'insert' as const, values: { id } })),
      'request-2',
    );
    assert.deepEqual(
      again.map((r) => [r.id, r.duplicate]),
      [stored[1].id, stored[3].id].map((id: string) => [id, true]),
    );
    assert.equal((await app.db.query(`SELECT 1 FROM batch.operations`)).length, 4);
    assert.deepEqual(
      await app.db.query(`SELECT indexname FROM pg_indexes WHERE indexname = 'operations_request'`),
      [],
      'the index of request_ref is gone',
    );
  });
});

describe('messages made by the relay (real PostgreSQL)', () => {
  const { config, upgraded } = databaseToUpgrade();

  it('writes out the text of a message the service before left unsent, which is then sent as it is', async () => {
    const old = await schemaBefore(config, MessagesMadeByTheRelay1766490000000);
    const client = await oldClient(old);
    const [{ id: chunk }] = await old.query(
      `INSERT INTO batch.chunks (status, worker, started_at, ended_at)
       VALUES ('COMPLETED', 'w', now(), '2026-11-21T06:00:00Z') RETURNING id`,
    );
    const stored: { id: string }[] = await old.query(
      `INSERT INTO batch.operations (client_id, target, type, idempotency_key)
       SELECT $1, 'public.items', 'insert', 'k' || g FROM generate_series(1, 3) g RETURNING id`,
      [client],
    );
    await old.query(
      `INSERT INTO batch.outbox (routing_key, chunk_id, client_id, operations, size)
       VALUES ('operations.settled.old', $1, $2, int8multirange(int8range($3, $4, '[]')), 100)`,
      [chunk, client, stored[0].id, stored[2].id],
    );
    await old.destroy();

    const app = await upgraded(); // runs the rest of the migrations
    const [message] = await app.get(Database).transaction((tx) => unsentMessages(tx, 10, 10_000_000));
    const made = JSON.parse(message.payload.toString()) as IOperationsSettledEvent;
    assert.equal(made.executionId, String(chunk));
    assert.equal(made.settledAt, '2026-11-21T06:00:00.000Z');
    assert.deepEqual(
      made.operations.map((o) => [o.id, o.status, o.target, o.idempotencyKey]),
      stored.map(({ id }, i) => [String(id), 'COMPLETED', 'public.items', `k${i + 1}`]),
    );
  });
});

describe('jobs added to a database in use (real PostgreSQL)', () => {
  const { config, upgraded } = databaseToUpgrade();

  it('keeps the clients and their operations; a client copies nothing until it is granted sources', async () => {
    const old = await schemaBefore(config, Jobs1766100000000);
    await old.query(`CREATE TABLE public.items (id int PRIMARY KEY); CREATE TABLE public.copies (id int PRIMARY KEY)`);
    const client = await oldClient(old);
    await old.query(
      `INSERT INTO batch.operations (client_id, target, type, row_values, shape, identity)
       SELECT $1, 'public.items', 'insert', jsonb_build_object('id', g), '', '' FROM generate_series(1, 3) g`,
      [client],
    );
    await old.destroy();

    const app = await upgraded();
    assert.equal((await app.db.query(`SELECT 1 FROM batch.operations`)).length, 3);
    const [row] = await app.db.query<{ targets: string[]; sources: string[] }>(
      `SELECT targets, sources FROM batch.clients WHERE id = $1`,
      [client],
    );
    assert.deepEqual(row, { targets: ['*'], sources: [] });
    const launcher = { id: client, name: 'old', admin: false, targets: ['*'], sources: [] } as never;
    await assert.rejects(
      app.get(JobOperator).launch(launcher, 'copy', { source: 'public.items', target: 'public.copies' }, {}),
      (e: unknown) => e instanceof BatchError && e.code === 'FORBIDDEN',
    );
  });
});
