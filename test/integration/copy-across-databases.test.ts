import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { BatchError } from '../../src/services/batch-error';
import { Readable } from 'node:stream';
import { ClientService } from '../../src/services/access/client.service';
import { ImportUploads } from '../../src/services/imports/import-uploads.service';
import type { StepRun } from '../../src/services/jobs/job-definition';
import { TargetLedgers } from '../../src/services/storage/target-ledger';
import { RetentionService } from '../../src/services/storage/retention.service';
import { setTimeout as sleep } from 'node:timers/promises';
import { Jobs, startJobs } from '../support/jobs-app';
import { dbClientConfig, sharedDatabaseUrl } from '../support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../support/test-database';

const ORDERS = `(id bigint PRIMARY KEY, customer text, total numeric(10,2) CHECK (total >= 0), note text)`;

/**
 * `copy` from a table of another database (BATCH_DATABASES) into the service's own: streamed from there by COPY, its
 * position committed with the rows here, so that every row arrives once, through failures and restarts.
 */
describe('copy from another database (BATCH_DATABASES)', () => {
  const legacyName = uniqueName('legacy');
  let legacy: Client;
  let jobs: Jobs;

  before(async () => {
    await createDatabase(legacyName);
    legacy = new Client(dbClientConfig(legacyName));
    await legacy.connect();
    // a source whose sessions (the service's, opened later) write values otherwise: dates day first, floats cut short;
    // this test's own session reads them as the service's do, so that equal values read as the same text
    for (const setting of [`DateStyle = 'SQL, DMY'`, `IntervalStyle = 'sql_standard'`, 'extra_float_digits = 0'])
      await legacy.query(`ALTER DATABASE "${legacyName}" SET ${setting}`);
    await legacy.query(`SET DateStyle = 'ISO, MDY'; SET IntervalStyle = postgres; SET extra_float_digits = 3`);
    await legacy.query(`
      CREATE TABLE orders ${ORDERS};
      INSERT INTO orders SELECT g, 'customer ' || g, g / 100.0,
             CASE g % 4 WHEN 0 THEN NULL WHEN 1 THEN E'tab\\there, new\\nline' WHEN 2 THEN 'back\\slash ☃' ELSE '' END
        FROM generate_series(1, 2500) g;`);
    const url = sharedDatabaseUrl(legacyName);
    jobs = await startJobs({ targets: ['*'], sources: ['*'] }, [], {
      BATCH_DATABASES: JSON.stringify({ legacy: url }),
    });
    await jobs.db.query(`CREATE TABLE orders ${ORDERS}; CREATE TABLE kept ${ORDERS};`);
  });
  after(async () => {
    await jobs?.close();
    await legacy?.end();
    await dropDatabase(legacyName);
  });

  async function copy(parameters: Record<string, unknown>, options: Record<string, number> = {}) {
    const launched = await jobs.operator.launch(jobs.client, 'copy', parameters, { chunkSize: 300, ...options });
    await jobs.runAll();
    return jobs.execution(launched.id);
  }

  /** The rows of a table, as one text, in the source's database or the service's. */
  async function contents(where: 'legacy' | 'main', table: string): Promise<string> {
    const sql = `SELECT md5(string_agg(t::text, '|' ORDER BY id)) AS digest, count(*)::int AS rows FROM ${table} t`;
    const [row] = where === 'legacy' ? (await legacy.query(sql)).rows : await jobs.db.query(sql);
    return `${row.rows} rows, ${row.digest}`;
  }

  /**
   * The queue's commit of the first chunk whose saved context has `field` ≥ `threshold` fails, once (a trigger): as a
   * worker that stopped between the commit in the target's database and the queue's.
   */
  async function failQueueCommitOnce(field: string, threshold: number): Promise<{ remove(): Promise<unknown> }> {
    await jobs.db.query(`
      CREATE SEQUENCE public.fail_once;
      CREATE FUNCTION public.fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF (NEW.execution_context->>'${field}')::int >= ${threshold} THEN
            IF nextval('public.fail_once') = 1 THEN
              RAISE EXCEPTION 'the worker stops here';
            END IF;
          END IF;
          RETURN NEW;
        END $$;
      CREATE TRIGGER fail_once BEFORE UPDATE ON batch.step_executions FOR EACH ROW EXECUTE FUNCTION public.fail_once()`);
    return {
      remove: () =>
        jobs.db.query(`DROP TRIGGER fail_once ON batch.step_executions; DROP FUNCTION public.fail_once();
                       DROP SEQUENCE public.fail_once`),
    };
  }

  it('copies every row once, the values as they are there, in chunks over partitions', async () => {
    const done = await copy({ source: 'legacy:public.orders', target: 'orders' }, { partitions: 3 });
    assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
    const read = done.steps.reduce((sum, step) => sum + step.readCount, 0);
    assert.equal(read, 2500);
    assert.equal(await contents('main', 'orders'), await contents('legacy', 'orders'));
  });

  it("copies values of every kind as they are there: built-in types in binary, else as text, whatever the source server's settings", async () => {
    const KINDS = `(id int PRIMARY KEY, s smallint, b bigint, r real, d double precision, n numeric(12,3), f boolean,
      t text, v varchar(20), y bytea, u uuid, dt date, tm time, ts timestamp, tz timestamptz, iv interval, j json,
      jb jsonb, a int[], ta text[])`;
    const rows = `SELECT g, g - 300, g * 10000000000, g / 7.0, g / 3.0, g / 9.0, g % 2 = 0, E'tab\\t ☃ ' || g,
                         'v' || g, decode(md5(g::text), 'hex'), md5(g::text)::uuid, date '2026-01-01' + g,
                         time '10:00' + g * interval '1 second', timestamp '2026-01-01' + g * interval '1 minute',
                         timestamptz '2026-01-01 00:00+02' + g * interval '1 hour', g * interval '1 day 1 second',
                         json_build_object('g', g, 'list', json_build_array(g, null, 'x')),
                         jsonb_build_object('g', g, 'nested', jsonb_build_object('deep', g)),
                         ARRAY[g, NULL, -g], ARRAY['a' || g, NULL, '']
                    FROM generate_series(1, 700) g`;
    const moody = KINDS.replace(/\)$/, ', m mood)');
    await legacy.query(`CREATE TABLE kinds ${KINDS}; INSERT INTO kinds ${rows};
                        INSERT INTO kinds (id) SELECT g FROM generate_series(701, 750) g;
                        CREATE TYPE mood AS ENUM ('sad', 'ok');
                        CREATE TABLE moods ${moody}; INSERT INTO moods SELECT *, 'ok' FROM kinds`);
    await jobs.db.query(
      `CREATE TABLE kinds ${KINDS}; CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE TABLE moods ${moody}`,
    );
    for (const table of ['kinds', 'moods']) {
      const done = await copy({ source: `legacy:${table}`, target: table });
      assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
      assert.equal(done.steps[0].readCount, 750);
      assert.equal(await contents('main', table), await contents('legacy', table));
    }
  });

  it('takes chunks of 100,000 rows between two databases where chunkSize is not given, 10,000 inside one', async () => {
    const rows = `SELECT g FROM generate_series(1, 100001) g`;
    await legacy.query(`CREATE TABLE many (id int PRIMARY KEY); INSERT INTO many ${rows}`);
    await jobs.db.query(`CREATE TABLE many (id int PRIMARY KEY); CREATE TABLE many_here (id int PRIMARY KEY);
                         INSERT INTO many_here ${rows}`);
    const chunks = async (source: string) => {
      const launched = await jobs.operator.launch(jobs.client, 'copy', { source, target: 'many' }, {});
      await jobs.runAll();
      const done = await jobs.execution(launched.id);
      assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
      assert.equal(done.steps[0].readCount, 100001);
      await jobs.db.query(`TRUNCATE many`);
      return done.steps[0].commitCount;
    };
    assert.equal(await chunks('legacy:many'), 2);
    assert.equal(await chunks('main:many_here'), 11);
  });

  it('reads a key of char(n) in order, its bounds kept whole', async () => {
    const CODED = `(code char(2) PRIMARY KEY, n int)`;
    const rows = `VALUES ('A', 1), ('AA', 2), ('AB', 3), ('AC', 4), ('B', 5)`;
    await legacy.query(`CREATE TABLE coded ${CODED}; INSERT INTO coded ${rows}`);
    await jobs.db.query(
      `CREATE TABLE coded ${CODED}; CREATE TABLE coded_here ${CODED}; INSERT INTO coded_here ${rows}`,
    );
    for (const source of ['legacy:coded', 'main:coded_here']) {
      const done = await copy({ source, target: 'coded' }, { chunkSize: 2 });
      assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
      const [{ copied }] = await jobs.db.query(`SELECT string_agg(code || n, ',' ORDER BY code) AS copied FROM coded`);
      assert.equal(copied, 'A1,AA2,AB3,AC4,B5', source);
      await jobs.db.query(`TRUNCATE coded`);
    }
  });

  it('upserts into a target with columns it does not write: an identity, a NOT NULL default', async () => {
    await jobs.db.query(`CREATE TABLE stamped (n bigint GENERATED ALWAYS AS IDENTITY, id bigint PRIMARY KEY,
                           customer text, total numeric(10,2), note text, at timestamptz NOT NULL DEFAULT now());
                         INSERT INTO stamped (id, customer) SELECT g, 'old' FROM generate_series(1, 2500, 2) g`);
    const done = await copy({ source: 'legacy:orders', target: 'stamped', mode: 'upsert' });
    assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
    const written = `SELECT md5(string_agg(concat_ws('|', id, customer, total, note), ',' ORDER BY id)) AS digest`;
    const [[here], { rows: there }] = await Promise.all([
      jobs.db.query(`${written} FROM stamped`),
      legacy.query(`${written} FROM orders`),
    ]);
    assert.equal(here.digest, there[0].digest);
  });

  it('a row refused while the source still streams a large chunk fails the copy at once, its connections closed', async () => {
    const BULKY = `(id int PRIMARY KEY, total numeric(10,2) CHECK (total >= 0), pad text)`;
    await legacy.query(`CREATE TABLE bulky (id int PRIMARY KEY, total numeric(10,2), pad text);
                        INSERT INTO bulky SELECT g, CASE g WHEN 5000 THEN -1 ELSE g END, repeat('x', 50)
                          FROM generate_series(1, 200000) g`);
    await jobs.db.query(`CREATE TABLE bulky ${BULKY}`);
    const done = await copy({ source: 'legacy:bulky', target: 'bulky' }, { chunkSize: 200_000 });
    assert.equal(done.status, 'FAILED');
    assert.match(done.exitStatus?.description ?? '', /id = 5000/);
    const { rows } = await legacy.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle'`,
    );
    assert.equal(rows[0].n, 1, 'no source session left reading (this one only)');
  });

  it("two workers on a step's first chunk there: the second waits for the first's commit and takes its position", async () => {
    const ledgers = jobs.app.get(TargetLedgers);
    const step = {
      job: { instanceId: 'race' },
      name: 'copy',
      partition: null,
      counts: { readCount: 0 },
      rejects: [],
      reject: () => undefined,
    } as unknown as StepRun;
    let writes = 0;
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let entered = () => {};
    const writing = new Promise<void>((resolve) => (entered = resolve));
    const chunk = (name: string, wait: Promise<void> | null) => ({
      write: async () => {
        writes += 1;
        entered();
        await wait;
        return `${name} wrote`;
      },
      position: () => ({ position: '100', done: 100 }),
      catchUp: ({ done }: { done: number }) => `${name} caught up at ${done}`,
    });
    const first = ledgers.jobChunk('legacy', step, 0, chunk('first', held));
    await writing;
    const second = ledgers.jobChunk('legacy', step, 0, chunk('second', null));
    await sleep(300); // the second is waiting there by now
    release();
    assert.deepEqual(await Promise.all([first, second]), ['first wrote', 'second caught up at 100']);
    assert.equal(writes, 1);
  });

  it('upserts: rows that are there already updated, the others inserted', async () => {
    await jobs.db.query(`INSERT INTO kept SELECT g, 'old', 0, 'old' FROM generate_series(1, 2500, 2) g`);
    const done = await copy({ source: 'legacy:orders', target: 'main:public.kept', mode: 'upsert' });
    assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
    assert.equal(await contents('main', 'kept'), await contents('legacy', 'orders'));
  });

  it('a row the target refuses fails the copy at its chunk; a restart after the fix goes on without a row twice', async () => {
    await jobs.db.query(`TRUNCATE orders`);
    await legacy.query(
      `ALTER TABLE orders DROP CONSTRAINT orders_total_check; UPDATE orders SET total = -1 WHERE id = 1000`,
    );
    const failed = await copy({ source: 'legacy:public.orders', target: 'orders', runId: 'restart' });
    assert.equal(failed.status, 'FAILED');
    assert.equal((await jobs.db.query(`SELECT count(*)::int AS n FROM orders`))[0].n, 900, 'the chunks before it');
    await legacy.query(`UPDATE orders SET total = 10 WHERE id = 1000`);
    const restarted = await jobs.operator.restart(jobs.client, failed.id);
    await jobs.runAll();
    const done = await jobs.execution(restarted.id);
    assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
    assert.equal(await contents('main', 'orders'), await contents('legacy', 'orders'));
  });

  it('with a skip limit, the refused row is skipped alone and named', async () => {
    await jobs.db.query(`TRUNCATE orders`);
    await legacy.query(`UPDATE orders SET total = -1 WHERE id = 1234`);
    const done = await copy({ source: 'legacy:public.orders', target: 'orders', runId: 'skip' }, { skipLimit: 1 });
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual(
      [done.steps[0].readCount, done.steps[0].writeCount, done.steps[0].writeSkipCount],
      [2500, 2499, 1],
    );
    const rejects = await jobs.operator.rejects(jobs.client, done.id);
    assert.equal(rejects.items[0].record, 'id = 1234');
    await legacy.query(`UPDATE orders SET total = 12.34 WHERE id = 1234`);
  });

  it('a row the source fails to read fails the copy at its chunk, however many rows it may skip', async () => {
    await jobs.db.query(`TRUNCATE orders`);
    await legacy.query(`CREATE VIEW failing_orders AS
                          SELECT id, customer, CASE WHEN id = 1234 THEN total / 0 ELSE total END AS total, note FROM orders`);
    const done = await copy(
      { source: 'legacy:public.failing_orders', target: 'orders', keyColumn: 'id', runId: 'source fails' },
      { skipLimit: 10 },
    );
    assert.equal(done.status, 'FAILED');
    assert.match(
      done.exitStatus?.description ?? '',
      /reading the source legacy:public\.failing_orders failed: division by zero/,
    );
    assert.equal(done.steps[0].writeSkipCount, 0, 'no row skipped');
    assert.equal((await jobs.operator.rejects(jobs.client, done.id)).items.length, 0);
    assert.equal((await jobs.db.query(`SELECT count(*)::int AS n FROM orders`))[0].n, 1200, 'the chunks before it');
  });

  it("copies into another database: within it, and from the service's own", async () => {
    await legacy.query(
      `DROP TABLE IF EXISTS copied, exported; CREATE TABLE copied ${ORDERS}; CREATE TABLE exported ${ORDERS}`,
    );
    const within = await copy({ source: 'legacy:orders', target: 'legacy:copied' }, { partitions: 2 });
    assert.equal(within.status, 'COMPLETED', JSON.stringify(within.exitStatus));
    assert.equal(await contents('legacy', 'copied'), await contents('legacy', 'orders'));
    await jobs.db.query(`TRUNCATE orders`);
    assert.equal((await copy({ source: 'legacy:orders', target: 'orders', runId: 'back' })).status, 'COMPLETED');
    const exported = await copy({ source: 'orders', target: 'legacy:public.exported', mode: 'upsert' });
    assert.equal(exported.status, 'COMPLETED', JSON.stringify(exported.exitStatus));
    assert.equal(await contents('legacy', 'exported'), await contents('legacy', 'orders'));
  });

  it('a chunk caught up from the ledger there is counted with its rejects in the execution that goes on', async () => {
    await legacy.query(
      `DROP TABLE IF EXISTS exported; CREATE TABLE exported ${ORDERS}; ALTER TABLE exported ADD CHECK (id <> 450)`,
    );
    // the chunk of rows 301 to 600 skips row 450 there, commits, and its position here fails once
    const stopped = await failQueueCommitOnce('done', 600);
    try {
      const failed = await copy({ source: 'orders', target: 'legacy:exported', runId: 'counted' }, { skipLimit: 1 });
      assert.equal(failed.status, 'FAILED');
      const restarted = await jobs.operator.restart(jobs.client, failed.id);
      await jobs.runAll();
      const done = await jobs.execution(restarted.id);
      assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS', JSON.stringify(done.exitStatus));
      const [{ readCount, writeCount, writeSkipCount }] = done.steps;
      assert.deepEqual([readCount, writeCount, writeSkipCount], [2200, 2199, 1], 'rows 301 to 2,500');
      const rejects = await jobs.operator.rejects(jobs.client, done.id);
      assert.deepEqual(
        rejects.items.map((reject) => reject.record),
        ['id = 450'],
      );
    } finally {
      await stopped.remove();
    }
  });

  it('retention keeps the positions there of a copy that may still go on, however old', async () => {
    await legacy.query(`DROP TABLE IF EXISTS exported; CREATE TABLE exported ${ORDERS}`);
    const stopped = await failQueueCommitOnce('done', 900);
    let failed;
    try {
      failed = await copy({ source: 'orders', target: 'legacy:exported', runId: 'kept' });
    } finally {
      await stopped.remove();
    }
    assert.equal(failed.status, 'FAILED');
    await legacy.query(`UPDATE batch_ledger.job_positions SET updated_at = now() - interval '1 year'`);
    await jobs.app.get(RetentionService).purge();
    const { rows } = await legacy.query(`SELECT step FROM batch_ledger.job_positions`);
    assert.deepEqual(
      rows.map((row: { step: string }) => row.step),
      [`${failed.instanceId}/copy/1`],
      "the failed copy's only",
    );
    const restarted = await jobs.operator.restart(jobs.client, failed.id);
    await jobs.runAll();
    assert.equal((await jobs.execution(restarted.id)).status, 'COMPLETED');
    assert.equal(await contents('legacy', 'exported'), await contents('legacy', 'orders'), 'every row once');
  });

  it('a chunk committed there whose position was not committed here is not copied again: the restart goes on', async () => {
    await legacy.query(`DROP TABLE IF EXISTS exported; CREATE TABLE exported ${ORDERS}`);
    // the queue's commit of the chunk that reaches 600 rows fails, once, after its rows and ledger row committed there
    const stopped = await failQueueCommitOnce('done', 600);
    try {
      const failed = await copy({ source: 'orders', target: 'legacy:exported', runId: 'stopped' });
      assert.equal(failed.status, 'FAILED');
      assert.equal(Number((await legacy.query(`SELECT count(*) AS n FROM exported`)).rows[0].n), 600, 'there');
      const restarted = await jobs.operator.restart(jobs.client, failed.id);
      await jobs.runAll();
      const done = await jobs.execution(restarted.id);
      assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
      assert.equal(await contents('legacy', 'exported'), await contents('legacy', 'orders'), 'every row once');
    } finally {
      await stopped.remove();
    }
  });

  it('imports into another database: rejects as at home, and a chunk committed there not loaded twice', async () => {
    await legacy.query(`DROP TABLE IF EXISTS items; CREATE TABLE items (id int PRIMARY KEY, qty int CHECK (qty >= 0))`);
    const csv = 'id,qty\n' + Array.from({ length: 100 }, (_, i) => `${i + 1},${i === 41 ? -1 : i}`).join('\n') + '\n';
    // the queue's commit of the chunk that passes byte 300 fails, once, after its records committed there
    const stopped = await failQueueCommitOnce('offset', 300);
    try {
      const launched = await jobs.app.get(ImportUploads).upload(
        jobs.client,
        {
          query: { target: 'legacy:items', skipLimit: '5', chunkSize: '10' },
          contentType: 'text/csv',
          contentEncoding: undefined,
        },
        Readable.from([Buffer.from(csv)]),
      );
      await jobs.runAll();
      const failed = await jobs.execution(launched.id);
      assert.equal(failed.status, 'FAILED');
      const restarted = await jobs.operator.restart(jobs.client, failed.id);
      await jobs.runAll();
      const done = await jobs.execution(restarted.id);
      assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
      const { rows } = await legacy.query(`SELECT count(*)::int AS n, sum(id)::int AS ids FROM items`);
      assert.deepEqual(rows[0], { n: 99, ids: 5050 - 42 }, 'every record once but the refused one');
      // refused in a chunk before the failure, committed with it (here and there)
      const rejects = await jobs.operator.rejects(jobs.client, failed.id);
      assert.deepEqual(
        rejects.items.map((r) => [r.line, r.code]),
        [[43, '23514']],
      );
    } finally {
      await stopped.remove();
    }
  });

  it('refuses an unknown database and a source the client is not granted', async () => {
    await assert.rejects(
      jobs.operator.launch(jobs.client, 'copy', { source: 'nowhere:orders', target: 'orders' }, {}),
      (error: BatchError) => error.code === 'UNKNOWN_TARGET' && /nowhere/.test(error.message),
    );
    const clients = jobs.app.get(ClientService);
    const created = await clients.create({ name: 'main-only', targets: ['*'], sources: ['orders', 'main:*'] });
    const mainOnly = (await clients.authenticate(created.apiKey))!;
    await assert.rejects(
      jobs.operator.launch(mainOnly, 'copy', { source: 'legacy:orders', target: 'orders' }, {}),
      (error: BatchError) => error.code === 'FORBIDDEN' && /legacy:orders/.test(error.message),
    );
  });
});
