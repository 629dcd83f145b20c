import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { BatchServiceError } from '../../src/client';
import { createCaller, settleAll, TestDb, type Caller } from '../support/harness';
import { dbClientConfig, SHARED_DB, withoutBroker } from '../support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../support/test-database';
import {
  eventually,
  freePort,
  http,
  relayTo,
  serviceEnv,
  ServiceProcess,
  startService,
} from '../support/service-process';

type Health = { status: string; details: Record<string, Record<string, unknown>> };

/**
 * The databases of BATCH_DATABASES as an operator sees them (built service): each up or down in /health and the
 * metrics, one that does not answer never making the service unready and tried again until it does, its URL's
 * password in no log line; creates for one never reached refused, and each table and metric named with its database.
 */
describe('other databases: reported, retried, never stopping the service (built service)', () => {
  if (withoutBroker()) return;
  const legacyName = uniqueName('legacy');
  let service: ServiceProcess;
  let relay: Server | undefined;
  let port: number;
  let db: TestDb;
  let payer: Caller;

  before(async () => {
    await createDatabase(legacyName);
    const legacy = new Client(dbClientConfig(legacyName));
    await legacy.connect();
    await legacy.query(`CREATE TABLE invoices (id int PRIMARY KEY, amount int NOT NULL)`).finally(() => legacy.end());
    port = await freePort();
    const user = `${SHARED_DB.user}:${encodeURIComponent(String(SHARED_DB.password ?? ''))}`;
    service = await startService(
      serviceEnv({
        LOG_LEVEL: 'info',
        BATCH_DATABASES: JSON.stringify({
          legacy: `postgres://${user}@${SHARED_DB.host}:${SHARED_DB.port}/${legacyName}`,
          later: { url: `postgres://${SHARED_DB.user}:hunter2secret@127.0.0.1:${port}/${legacyName}`, poolSize: 2 },
        }),
      }),
    );
    db = new TestDb(service.env.DB_NAME);
    payer = await createCaller(service, 'payer', ['legacy:*', 'later:*', 'ledger']);
  });
  after(async () => {
    relay?.close();
    await payer?.close();
    await db?.close();
    await service?.destroy();
    await dropDatabase(legacyName);
  });

  const health = async () => (await http<Health>(service, 'GET', '/health', null)).body;
  const gauge = async () => {
    const response = await fetch(`${service.url}/metrics`, { headers: { 'x-api-key': service.adminKey } });
    return (await response.text()).split('\n').filter((line) => line.startsWith('batch_database_up{'));
  };

  it('a database that does not answer is down, the service ready all the same', async () => {
    const response = await http<Health>(service, 'GET', '/health', null);
    assert.equal(response.status, 200);
    assert.equal(response.body.status, 'ok');
    assert.deepEqual(response.body.details.databases, {
      status: 'down',
      legacy: 'up',
      later: 'down',
      optional: true,
    });
    assert.deepEqual(await gauge(), [
      'batch_database_up{database="legacy"} 1',
      'batch_database_up{database="later"} 0',
    ]);
    assert.match(service.logs(), /database later \(127\.0\.0\.1:\d+\/legacy_[^)]+\) does not answer/);
    assert.doesNotMatch(service.logs(), /hunter2secret/);
  });

  it('answers a create for a database never reached since the start UNAVAILABLE, and stores nothing', async () => {
    // `later` has not answered once: its catalog was never read, so nothing can be checked against it
    const later = { target: 'later:invoices', type: 'insert' as const, values: { id: 1, amount: 1 } };
    const one = await http<{ code: string; details: unknown }>(service, 'POST', '/api/operations', payer.apiKey, later);
    assert.deepEqual([one.status, one.body.code, one.body.details], [503, 'UNAVAILABLE', { database: 'later' }]);
    const legacy = { target: 'legacy:invoices', type: 'insert' as const, values: { id: 1, amount: 1 } };
    const bulk = await http<{ code: string }>(service, 'POST', '/api/operations/bulk', payer.apiKey, {
      operations: [legacy, later],
    });
    assert.deepEqual([bulk.status, bulk.body.code], [503, 'UNAVAILABLE']);
    await assert.rejects(payer.rpc.createOperation(later), (error: BatchServiceError) => error.code === 'UNAVAILABLE');
    await assert.rejects(
      payer.rpc.createOperations([legacy, later]),
      (error: BatchServiceError) => error.code === 'UNAVAILABLE',
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM batch.operations`), 0, 'nothing stored, not even legacy');
  });

  it('is tried again, and up once it answers', async () => {
    relay = await relayTo(port, SHARED_DB.host ?? '127.0.0.1', Number(SHARED_DB.port));
    await eventually(async () => ((await health()).details.databases?.status === 'up' ? true : undefined), 25_000);
    assert.deepEqual(await gauge(), [
      'batch_database_up{database="legacy"} 1',
      'batch_database_up{database="later"} 1',
    ]);
    assert.match(service.logs(), /database later \(127\.0\.0\.1:\d+\/legacy_[^)]+\) answers/);
    assert.doesNotMatch(service.logs(), /hunter2secret/);
  });

  it("names each table's database in GET /api/targets, and labels the metrics of its targets with it", async () => {
    await db.query(`CREATE TABLE ledger (id int PRIMARY KEY, note text)`);
    const created = await http(service, 'POST', '/api/operations/bulk', payer.apiKey, {
      operations: [
        { target: 'legacy:invoices', type: 'insert', values: { id: 1, amount: 1 } },
        { target: 'legacy:invoices', type: 'update', key: { id: 1 }, values: { amount: 2 } },
        { target: 'ledger', type: 'insert', values: { id: 1, note: 'here' } },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await settleAll(db, payer);

    // `later` (the same tables as `legacy`) is listed once its catalog is read again after it answered
    const listed = await eventually(async () => {
      const targets = await http<{ name: string; database: string }[]>(service, 'GET', '/api/targets', payer.apiKey);
      return targets.body.length === 3 ? targets.body : undefined;
    });
    assert.deepEqual(listed.map((target) => [target.name, target.database]).sort(), [
      ['later:public.invoices', 'later'],
      ['legacy:public.invoices', 'legacy'],
      ['public.ledger', 'main'],
    ]);

    const metrics = (await (await fetch(`${service.url}/metrics`)).text()).split('\n');
    const withTarget = metrics.filter((line) => /[{,]target="/.test(line));
    for (const line of withTarget) {
      const target = /[{,]target="([^"]*)"/.exec(line)![1];
      const database = target.includes(':') ? target.slice(0, target.indexOf(':')) : 'main';
      assert.match(line, new RegExp(`[{,]database="${database}"[,}]`), `the database of ${target}`);
    }
    for (const sample of [
      'batch_operations_created_total{database="legacy",target="legacy:public.invoices",type="insert"} 1',
      'batch_operations_created_total{database="legacy",target="legacy:public.invoices",type="update"} 1',
      'batch_operations_created_total{database="main",target="public.ledger",type="insert"} 1',
      'batch_operations_settled_total{status="COMPLETED",database="legacy",target="legacy:public.invoices"} 2',
      'batch_operations_settled_total{status="COMPLETED",database="main",target="public.ledger"} 1',
    ])
      assert.ok(metrics.includes(sample), `${sample} in:\n${withTarget.join('\n')}`);
    assert.ok(
      withTarget.some((line) => line.startsWith('batch_statements_total{database="legacy",target="legacy:public.')),
      'the statements run there',
    );
  });
});
