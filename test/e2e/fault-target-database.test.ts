import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Client } from 'pg';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import {
  Caller,
  createCaller,
  jobEnded,
  jobExecution,
  reportedDown,
  ServiceGroup,
  settleAll,
  TestDb,
} from '../support/harness';
import { POSTGRES_MISSING, PrivatePostgres, sleep, startPostgres } from '../support/private-services';
import { eventually, http, ServiceProcess, serviceEnv, startService } from '../support/service-process';
import { dbClientConfig, sharedDatabaseUrl, withoutBroker } from '../support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../support/test-database';

const EVENTS = `(id bigserial PRIMARY KEY, ref bigint NOT NULL UNIQUE)`;
const COUNTERS = `(name text PRIMARY KEY, n bigint NOT NULL DEFAULT 0)`;

/** Inserts of distinct refs into `events` and increments of ten counters, in requests of 1,000. */
function workload(target: (table: string) => string, inserts: number, increments: number) {
  return [
    ...Array.from({ length: inserts / 1000 }, (_, m) =>
      Array.from({ length: 1000 }, (_, i) => ({
        target: target('events'),
        type: 'insert' as const,
        values: { ref: m * 1000 + i },
      })),
    ),
    ...Array.from({ length: increments / 1000 }, () =>
      Array.from({ length: 1000 }, (_, i) => ({
        target: target('counters'),
        type: 'increment' as const,
        key: { name: `c${i % 10}` },
        values: { n: 1 },
      })),
    ),
  ];
}

/** A connection to the private server's `postgres` database, which lives on through the server's stops. */
async function connectTo(server: PrivatePostgres): Promise<Client> {
  const client = new Client({ host: '127.0.0.1', port: Number(server.env.DB_PORT), user: 'postgres' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** What a test against a private target server started, stopped (what the service said last, where it exited). */
async function tearDown(started: {
  service?: ServiceProcess;
  db?: TestDb;
  billing?: Client;
  server?: PrivatePostgres;
}) {
  const { service, db, billing, server } = started;
  if (service && service.process.exitCode !== null) console.error(service.logs().slice(-4000));
  await server?.thaw().catch(() => undefined); // a frozen server's clients would wait for it to end their connections
  await billing?.end().catch(() => undefined);
  await db?.close();
  await service?.destroy();
  await server?.destroy();
}

/** `inserts` operations on the service's own `events`, drained while billing is away (`how` says how). */
async function drainsOwnTarget(caller: Caller, db: TestDb, inserts: number, timeoutMs: number, how: string) {
  for (const operations of workload(() => 'events', inserts, 0)) await caller.rpc.createOperations(operations);
  await eventually(
    async () => ((await db.count(`SELECT count(*) AS n FROM events`)) === inserts ? true : undefined),
    timeoutMs,
    `the service's own target drained while billing ${how}`,
  );
}

async function count(client: Client, sql: string): Promise<number> {
  return Number((await client.query<{ n: string }>(sql)).rows[0].n);
}

/**
 * Workers killed (SIGKILL from inside, at the injection point BATCH_TEST_KILL_AT) between a chunk's commit in the
 * target's database and its settling in the queue's, over two thousand chunks: each chunk is settled by the next worker
 * from the ledger, never applied twice, and every operation is settled and notified.
 */
describe('fault: workers killed between the commits of chunks for another database (built service)', () => {
  if (withoutBroker()) return;
  const billingName = uniqueName('billing');
  let group: ServiceGroup;
  let billing: Client;

  after(async () => {
    await group?.close();
    await billing?.end();
    await dropDatabase(billingName);
  });

  it('applies each chunk once and settles every operation', async (t) => {
    await createDatabase(billingName);
    billing = new Client(dbClientConfig(billingName));
    await billing.connect();
    await billing.query(`CREATE TABLE events ${EVENTS}; CREATE TABLE counters ${COUNTERS};
                         INSERT INTO counters SELECT 'c' || g, 0 FROM generate_series(0, 9) g`);
    const url = sharedDatabaseUrl(billingName);
    const env = serviceEnv({
      BATCH_DATABASES: JSON.stringify({ billing: url }),
      BATCH_PROCESS_OPERATION_LIMIT: '10',
      BATCH_CHUNK_MAX_OPERATIONS: '10',
      BATCH_CHUNK_LEASE_MS: '1000',
    });
    group = new ServiceGroup(env);
    const api = await group.start('api');
    const caller = await createCaller(api, 'loader', ['billing:*']);
    const INSERTS = 10_000;
    const INCREMENTS = 10_000;
    for (const operations of workload((table) => `billing:${table}`, INSERTS, INCREMENTS))
      await caller.rpc.createOperations(operations);

    let kills = 0;
    const pending = () => group.db.count(`SELECT count(*) AS n FROM batch.operation_states WHERE status = 'PENDING'`);
    for (let round = 0; round < 60 && (await pending()) > 0; round++) {
      const killing = { ...env, BATCH_ROLE: 'worker', BATCH_TEST_KILL_AT: 'between-commits:0.008' };
      const worker = await startService(killing, { mayBeKilled: true });
      group.processes.push(worker);
      while (worker.process.exitCode === null && worker.process.signalCode === null && (await pending()) > 0)
        await sleep(200);
      if (worker.process.signalCode === 'SIGKILL') kills += 1;
      await worker.stop();
    }
    const chunks = await count(billing, `SELECT count(*) AS n FROM batch_ledger.applied_chunks`);
    t.diagnostic(`${kills} workers killed between the commits; ${chunks} chunks applied in billing`);
    assert.ok(kills >= 1, `killed at the point: ${kills} times`);
    assert.ok(chunks >= 1500, `thousands of chunks: ${chunks}`);

    const settled = await settleAll(group.db, caller, 60_000);
    assert.equal(settled.length, INSERTS + INCREMENTS);
    assert.ok(settled.every((o) => o.status === 'COMPLETED'));
    assert.equal(await count(billing, `SELECT count(*) AS n FROM events`), INSERTS, 'each insert once');
    assert.equal(await count(billing, `SELECT sum(n) AS n FROM counters`), INCREMENTS, 'each increment once');
    assert.equal(await group.db.count(`SELECT count(*) AS n FROM batch.prepared_chunks`), 0);
    await caller.close();
  });
});

/**
 * The server of a target's database (a private PostgreSQL, `billing`) stopped mid-drain and started again: its
 * operations stay PENDING (none FAILED), the service's own database's targets go on draining meanwhile, /health names
 * it down, and once it is back every operation is applied there once.
 */
describe(
  "fault: a target's database stopped and started mid-drain (built service, private PostgreSQL)",
  { skip: POSTGRES_MISSING ?? false },
  () => {
    if (withoutBroker()) return;
    let server: PrivatePostgres;
    let service: ServiceProcess;
    let db: TestDb;
    let billing: Client;

    after(() => tearDown({ service, db, billing, server }));

    it('holds back only its own operations while it is down, and applies them once when it returns', async () => {
      server = await startPostgres();
      billing = await connectTo(server);
      await billing.query(`CREATE TABLE events ${EVENTS}; CREATE TABLE counters ${COUNTERS};
                           INSERT INTO counters SELECT 'c' || g, 0 FROM generate_series(0, 9) g`);
      service = await startService(
        serviceEnv({
          BATCH_DATABASES: JSON.stringify({ billing: `postgres://postgres@127.0.0.1:${server.env.DB_PORT}/postgres` }),
          BATCH_PROCESS_OPERATION_LIMIT: '200',
          BATCH_CHUNK_MAX_OPERATIONS: '200',
          BATCH_CHUNK_LEASE_MS: '2000',
        }),
      );
      db = new TestDb(service.env.DB_NAME, service.env);
      await db.query(`CREATE TABLE events ${EVENTS}`);
      const caller = await createCaller(service, 'loader', ['billing:*', 'events']);
      const BILLED = 40_000;
      for (const operations of workload((table) => `billing:${table}`, BILLED / 2, BILLED / 2))
        await caller.rpc.createOperations(operations);
      await eventually(async () => ((await count(billing, `SELECT count(*) AS n FROM events`)) > 0 ? true : undefined));
      await billing.end();
      await server.stop();

      const LOCAL = 5000;
      await drainsOwnTarget(caller, db, LOCAL, 60_000, 'is down');
      const health = await http<{ details: Record<string, Record<string, string>> }>(service, 'GET', '/health', null);
      assert.equal(health.status, 200, 'ready while main is up');
      assert.equal(health.body.details.databases?.billing, 'down');
      const states = await db.query<{ status: string; n: string }>(
        `SELECT status, count(*) AS n FROM batch.operation_states WHERE target LIKE 'billing:%' GROUP BY 1`,
      );
      assert.ok(!states.some((s) => s.status === 'FAILED'), `none failed for it: ${JSON.stringify(states)}`);
      assert.ok(
        states.some((s) => s.status === 'PENDING'),
        'some wait for it',
      );

      await server.start();
      billing = await connectTo(server);
      const settled = await settleAll(db, caller, 120_000);
      assert.equal(settled.length, BILLED + LOCAL);
      assert.ok(settled.every((o) => o.status === 'COMPLETED'));
      assert.equal(await count(billing, `SELECT count(*) AS n FROM events`), BILLED / 2, 'each insert once');
      assert.equal(await count(billing, `SELECT sum(n) AS n FROM counters`), BILLED / 2, 'each increment once');
      await caller.close();
    });
  },
);

/**
 * The server of a target's database frozen (every process stopped by SIGSTOP, its connections left open: a frozen host,
 * a lost route) while a chunk for it is being applied there: the chunk waits for it without holding back the service's
 * own database, /health names it down, and once it answers again every operation is applied there once.
 */
describe(
  "fault: a target's database that stops answering mid-chunk (built service, private PostgreSQL)",
  { skip: POSTGRES_MISSING ?? false },
  () => {
    if (withoutBroker()) return;
    let server: PrivatePostgres;
    let service: ServiceProcess;
    let db: TestDb;
    let billing: Client;

    after(() => tearDown({ service, db, billing, server }));

    it('holds back only its own operations while it does not answer, and applies them once when it does', async () => {
      server = await startPostgres();
      billing = await connectTo(server);
      await billing.query(`CREATE TABLE events ${EVENTS}`);
      service = await startService(
        serviceEnv({
          BATCH_DATABASES: JSON.stringify({ billing: `postgres://postgres@127.0.0.1:${server.env.DB_PORT}/postgres` }),
          BATCH_CHUNK_LEASE_MS: '2000',
          BATCH_CATALOG_TTL: '200', // creates for it read its catalog again, from a server that does not answer
        }),
      );
      db = new TestDb(service.env.DB_NAME, service.env);
      await db.query(`CREATE TABLE events ${EVENTS}`);
      const caller = await createCaller(service, 'loader', ['billing:*', 'events']);
      const [first, second] = workload((table) => `billing:${table}`, 2000, 0);
      await caller.rpc.createOperations(first);
      // applied there: the worker's connections to it are open and idle, as between chunks
      await eventually(async () => ((await count(billing, `SELECT count(*) AS n FROM events`)) > 0 ? true : undefined));
      await server.freeze();
      await caller.rpc.createOperations(second);
      await sleep(1000); // claimed, and waiting for the frozen server

      const LOCAL = 5000;
      await drainsOwnTarget(caller, db, LOCAL, 30_000, 'does not answer');
      await reportedDown(service, 'billing', 30_000);
      const states = await db.query<{ status: string; n: string }>(
        `SELECT status, count(*) AS n FROM batch.operation_states WHERE target LIKE 'billing:%' GROUP BY 1`,
      );
      assert.ok(!states.some((s) => s.status === 'FAILED'), `none failed for it: ${JSON.stringify(states)}`);

      await server.thaw();
      const settled = await settleAll(db, caller, 120_000);
      assert.equal(settled.length, 2000 + LOCAL);
      assert.ok(settled.every((o) => o.status === 'COMPLETED'));
      assert.equal(await count(billing, `SELECT count(*) AS n FROM events`), 2000, 'each insert once');
      await caller.close();
    });
  },
);

/**
 * The server a copy writes to (a private PostgreSQL, `billing`) stopped mid-copy and started again, or frozen (SIGSTOP:
 * its connections open, its statements waiting) and thawed: the copy waits at its chunk, another job runs meanwhile,
 * and the copy goes on once the server is back, each chunk's rows and position committed together there, so that
 * every row arrives once.
 */
for (const [broken, mended, breakIt, mendIt] of [
  ['stopped', 'started', (server: PrivatePostgres) => server.stop(), (server: PrivatePostgres) => server.start()],
  ['frozen', 'thawed', (server: PrivatePostgres) => server.freeze(), (server: PrivatePostgres) => server.thaw()],
] as const)
  describe(
    `fault: a copy's target database ${broken} and ${mended} mid-copy (built service, private PostgreSQL)`,
    { skip: POSTGRES_MISSING ?? false },
    () => {
      if (withoutBroker()) return;
      const ROWS = 1_000_000; // seconds of copying in chunks of 1,000: the server is stopped in the middle
      let server: PrivatePostgres;
      let service: ServiceProcess;
      let db: TestDb;
      let billing: Client | undefined;

      after(() => tearDown({ service, db, billing, server }));

      it('waits while its target is down and goes on where it stopped: every row once', async () => {
        server = await startPostgres();
        billing = await connectTo(server);
        // no key: a row copied twice would be there twice
        await billing.query(`CREATE TABLE copied (id int NOT NULL, note text)`);
        await billing.end();
        service = await startService(
          serviceEnv({
            BATCH_DATABASES: JSON.stringify({
              billing: `postgres://postgres@127.0.0.1:${server.env.DB_PORT}/postgres`,
            }),
          }),
        );
        db = new TestDb(service.env.DB_NAME, service.env);
        await db.query(`CREATE TABLE src (id int PRIMARY KEY, note text);
                      INSERT INTO src SELECT g, 'n' || g FROM generate_series(1, ${ROWS}) g`);
        const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
          name: 'mover',
          targets: ['billing:*', 'local_copy'],
          sources: ['src'],
        });
        const key = created.body.apiKey;
        const launched = await http<IJobExecution>(service, 'POST', '/api/jobs/copy/executions', key, {
          parameters: { source: 'src', target: 'billing:copied' },
          options: { chunkSize: 1000 },
        });
        assert.equal(launched.status, 202, JSON.stringify(launched.body));
        const execution = () => jobExecution(service, key, launched.body.id);
        await eventually(async () => ((await execution()).steps[0]?.writeCount > 20_000 ? true : undefined));
        await breakIt(server);
        await sleep(1000); // a chunk committed there just before is recorded here
        const stopped = await execution();
        assert.ok(stopped.steps[0].writeCount < ROWS, 'stopped mid-copy');
        // another job, within the service's own database, runs meanwhile
        await db.query(`CREATE TABLE local_copy (id int PRIMARY KEY, note text)`);
        const other = await http<IJobExecution>(service, 'POST', '/api/jobs/copy/executions', key, {
          parameters: { source: 'src', target: 'local_copy', to: 100_000 },
        });
        assert.equal(other.status, 202, JSON.stringify(other.body));
        const otherDone = await jobEnded(service, key, other.body.id, 60_000);
        assert.equal(otherDone.status, 'COMPLETED', JSON.stringify(otherDone.exitStatus));
        const waiting = await execution();
        assert.equal(waiting.status, 'STARTED', 'the copy waits for its target: no failure');
        assert.equal(waiting.steps[0].writeCount, stopped.steps[0].writeCount, 'nothing written meanwhile');

        await mendIt(server);
        const done = await jobEnded(service, key, launched.body.id, 120_000);
        assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
        billing = await connectTo(server);
        assert.equal(await count(billing, `SELECT count(*) AS n FROM copied`), ROWS, 'no row lost or doubled');
        assert.equal(await count(billing, `SELECT count(DISTINCT id) AS n FROM copied`), ROWS);
        assert.equal(await count(billing, `SELECT count(*) AS n FROM copied WHERE note <> 'n' || id`), 0);
      });
    },
  );
