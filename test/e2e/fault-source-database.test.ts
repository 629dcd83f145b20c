import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { jobEnded, jobExecution, reportedDown, TestDb } from '../support/harness';
import { POSTGRES_MISSING, PrivatePostgres, sleep, startPostgres } from '../support/private-services';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

const TABLE = `(id int PRIMARY KEY, qty int, price numeric(12,2), note text, at timestamptz)`;
/** Enough for the copy to take seconds in chunks of 1,000, so that it is stopped in the middle. */
const ROWS = 1_000_000;

/**
 * The server a copy reads from (a private PostgreSQL of the test's own, named `legacy` in BATCH_DATABASES) stopped
 * mid-copy and started again: the service stays ready and reports it down, the copy waits at the chunk it was in (the
 * chunk rolled back, tried again with back-off) and goes on by itself once the server is back: every row once.
 */
describe(
  'fault: the source database stopped and started mid-copy (built service, private PostgreSQL)',
  { skip: POSTGRES_MISSING ?? false },
  () => {
    if (withoutBroker()) return;
    let legacy: PrivatePostgres;
    let service: ServiceProcess;
    let db: TestDb;

    before(async () => {
      legacy = await startPostgres();
      const source = new Client({
        host: '127.0.0.1',
        port: Number(legacy.env.DB_PORT),
        user: 'postgres',
        database: 'postgres',
      });
      await source.connect();
      await source.query(`CREATE TABLE src ${TABLE}`);
      await source.query(
        `INSERT INTO src SELECT g, g % 97, g / 3.0, 'n' || g, '2026-11-26T10:00:00Z' FROM generate_series(1, ${ROWS}) g`,
      );
      await source.end();
      service = await startService(
        serviceEnv({
          BATCH_DATABASES: JSON.stringify({ legacy: `postgres://postgres@127.0.0.1:${legacy.env.DB_PORT}/postgres` }),
        }),
      );
      db = new TestDb(service.env.DB_NAME, service.env);
      await db.query(`CREATE TABLE copied ${TABLE}`);
    });

    after(async () => {
      // a service that exited: what it said last
      if (service && service.process.exitCode !== null) console.error(service.logs().slice(-4000));
      await db?.close();
      await service?.destroy();
      await legacy?.destroy();
    });

    it('waits while its source is down, reported so, and goes on where it stopped: every row once', async () => {
      const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
        name: 'mover',
        targets: ['copied'],
        sources: ['legacy:*'],
      });
      const key = created.body.apiKey;
      const launched = await http<IJobExecution>(service, 'POST', '/api/jobs/copy/executions', key, {
        parameters: { source: 'legacy:public.src', target: 'copied' },
        options: { chunkSize: 1000 },
      });
      assert.equal(launched.status, 202, JSON.stringify(launched.body));
      const execution = (id: string) => jobExecution(service, key, id);
      await eventually(async () =>
        (await execution(launched.body.id)).steps[0]?.writeCount > 20_000 ? true : undefined,
      );
      await legacy.stop();
      await reportedDown(service, 'legacy', 25_000);
      const waiting = await execution(launched.body.id);
      assert.equal(waiting.status, 'STARTED', 'the copy waits for its source: no failure');
      const copiedSoFar = await db.count(`SELECT count(*) AS n FROM copied`);
      assert.ok(copiedSoFar < ROWS, 'stopped mid-copy');
      await sleep(1000);
      assert.equal(await db.count(`SELECT count(*) AS n FROM copied`), copiedSoFar, 'nothing written meanwhile');

      await legacy.start();
      const done = await jobEnded(service, key, launched.body.id, 120_000);
      assert.equal(done.status, 'COMPLETED', JSON.stringify(done.exitStatus));
      assert.equal(done.startCount, 1, 'the same execution went on where it stopped');
      assert.equal(await db.count(`SELECT count(*) AS n FROM copied`), ROWS, 'no row lost or doubled');
      assert.equal(await db.count(`SELECT count(DISTINCT id) AS n FROM copied`), ROWS);
      assert.equal(
        await db.count(`SELECT count(*) AS n FROM copied WHERE note <> 'n' || id OR qty <> id % 97`),
        0,
        'each row as it was there',
      );
    });
  },
);
