import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { restartPostgres, sleep } from '../support/faults';
import { createCaller, settleAll, steadyLoad, TestDb } from '../support/harness';
import { http, serviceEnv, ServiceProcess, startService } from '../support/service-process';

/**
 * PostgreSQL restarted mid-load: meanwhile ingest answers UNAVAILABLE at once (no hang), and afterwards the
 * poller and the outbox relay recover by themselves; nothing acknowledged is lost or applied twice.
 */
describe('fault: PostgreSQL restarted mid-load (built service, real broker and database)', () => {
  let service: ServiceProcess;
  let db: TestDb;

  after(async () => {
    await db?.close();
    await service?.destroy();
  });

  it('answers UNAVAILABLE while the database is down and recovers by itself', async (t) => {
    service = await startService(serviceEnv());
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref text NOT NULL)`);
    const caller = await createCaller(service, 'steady', ['events'], 10_000);

    const load = steadyLoad(caller, 8);
    const { acknowledged, errors } = load;
    let before: number;
    let during: number;
    try {
      await sleep(1000);
      before = acknowledged.length;
      await restartPostgres();
      during = acknowledged.length - before;
      await sleep(3000);
    } finally {
      await load.stop();
    }
    const slowest = load.slowest();
    t.diagnostic(
      `${before} acknowledged before, ${during} during, ${acknowledged.length - before - during} after the restart; errors ${JSON.stringify([...errors])}; slowest call ${slowest} ms`,
    );
    assert.ok((errors.get('UNAVAILABLE') ?? 0) > 0, 'ingest answered UNAVAILABLE while the database was down');
    assert.equal(errors.get('TIMEOUT'), undefined, 'no call hung until its timeout');
    assert.ok(acknowledged.length > before + during + 50, 'ingest works again after the restart');
    const health = await http(service, 'GET', '/api/operations?limit=1', caller.apiKey);
    assert.equal(health.status, 200);

    const settled = await settleAll(db, caller, 60_000);
    const completed = new Set(settled.filter((o) => o.status === 'COMPLETED').map((o) => o.id));
    assert.ok(
      acknowledged.every((id) => completed.has(id)),
      'every acknowledged operation was applied',
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.events`), completed.size, 'each applied once');
    await caller.close();
  });
});
