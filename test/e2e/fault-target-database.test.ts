import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Client } from 'pg';
import { createCaller, ServiceGroup, settleAll, TestDb } from '../support/harness';
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

async function count(client: Client, sql: string): Promise<number> {
  return Number((await client.query<{ n: string }>(sql)).rows[0].n);
}

/**
 * Workers killed (SIGKILL from inside, at the injection point BATCH_TEST_KILL_AT) between a chunk's commit in the
 * target's database and its settling in the queue's, over a thousand chunks: each chunk is settled by the next worker
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
    const INSERTS = 5000;
    const INCREMENTS = 5000;
    for (const operations of workload((table) => `billing:${table}`, INSERTS, INCREMENTS))
      await caller.rpc.createOperations(operations);

    let kills = 0;
    const pending = () => group.db.count(`SELECT count(*) AS n FROM batch.operation_states WHERE status = 'PENDING'`);
    for (let round = 0; round < 60 && (await pending()) > 0; round++) {
      const worker = await startService({ ...env, BATCH_ROLE: 'worker', BATCH_TEST_KILL_AT: 'between-commits:0.008' });
      group.processes.push(worker);
      while (worker.process.exitCode === null && worker.process.signalCode === null && (await pending()) > 0)
        await sleep(200);
      if (worker.process.signalCode === 'SIGKILL') kills += 1;
      await worker.stop();
    }
    const chunks = await count(billing, `SELECT count(*) AS n FROM batch_ledger.applied_chunks`);
    t.diagnostic(`${kills} workers killed between the commits; ${chunks} chunks applied in billing`);
    assert.ok(kills >= 1, `killed at the point: ${kills} times`);
    assert.ok(chunks >= 500, 'hundreds of chunks');

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

    after(async () => {
      if (service && service.process.exitCode !== null) console.error(service.logs().slice(-4000));
      await billing?.end().catch(() => undefined);
      await db?.close();
      await service?.destroy();
      await server?.destroy();
    });

    it('holds back only its own operations while it is down, and applies them once when it returns', async () => {
      server = await startPostgres();
      const connect = async () => {
        const client = new Client({ host: '127.0.0.1', port: Number(server.env.DB_PORT), user: 'postgres' });
        client.on('error', () => undefined);
        await client.connect();
        return client;
      };
      billing = await connect();
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
      for (const operations of workload(() => 'events', LOCAL, 0)) await caller.rpc.createOperations(operations);
      await eventually(
        async () => ((await db.count(`SELECT count(*) AS n FROM events`)) === LOCAL ? true : undefined),
        60_000,
        "the service's own target drained while billing is down",
      );
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
      billing = await connect();
      const settled = await settleAll(db, caller, 120_000);
      assert.equal(settled.length, BILLED + LOCAL);
      assert.ok(settled.every((o) => o.status === 'COMPLETED'));
      assert.equal(await count(billing, `SELECT count(*) AS n FROM events`), BILLED / 2, 'each insert once');
      assert.equal(await count(billing, `SELECT sum(n) AS n FROM counters`), BILLED / 2, 'each increment once');
      await caller.close();
    });
  },
);
