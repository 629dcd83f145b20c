import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCaller, TestDb, type Caller } from '../support/harness';
import { eventually, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/**
 * A poison operation — one whose chunk fails as a whole every time (here a trigger raising a deadlock error for one
 * value) — holds back neither the other targets nor, in the end, the other operations of its own target: the chunk
 * is retried a bounded number of times with back-off, then split until the poison is alone, and it ends FAILED.
 */
describe('a poison operation fails alone while other targets flow (built service)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let caller: Caller;

  before(async () => {
    service = await startService(serviceEnv({ BATCH_PROCESS_OPERATION_INTERVAL: '200', BATCH_CHUNK_RETRY_LIMIT: '5' }));
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.ledger (id int PRIMARY KEY, v text)`);
    await db.query(`CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.v = 'poison' THEN RAISE EXCEPTION 'deadlock detected, every time' USING ERRCODE = '40P01'; END IF; RETURN NEW; END $$`);
    await db.query(
      `CREATE TRIGGER refuse_poison BEFORE INSERT ON public.ledger FOR EACH ROW EXECUTE FUNCTION public.refuse_poison()`,
    );
    await db.query(`CREATE TABLE public.events (id int PRIMARY KEY)`);
    caller = await createCaller(service, 'mixed', ['ledger', 'events']);
  });

  after(async () => {
    await caller?.close();
    await db?.close();
    await service?.destroy();
  });

  const statusOf = async (id: string) =>
    (
      await db.query<{ status: string; error_code: string | null }>(
        `SELECT status, error_code FROM batch.operation_states WHERE id = $1`,
        [id],
      )
    )[0];

  it('applies another target within seconds while the poison waits, then fails the poison alone and applies its neighbours', async () => {
    const { operations } = await caller.rpc.createOperations(
      Array.from({ length: 100 }, (_, i) => ({
        target: 'ledger',
        type: 'insert' as const,
        values: { id: i, v: i === 60 ? 'poison' : 'fine' },
      })),
    );
    const poison = operations[60].id;
    await eventually(
      async () =>
        (await db.count(`SELECT count(*) AS n FROM batch.chunks WHERE status = 'FAILED'`)) > 0 ? true : undefined,
      10_000,
      'the poisoned chunk to fail',
    );

    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const { id } = await caller.rpc.createOperation({ target: 'events', type: 'insert', values: { id: i } });
      await eventually(
        async () => ((await statusOf(id)).status === 'COMPLETED' ? true : undefined),
        5_000,
        'another target applied',
      );
      assert.ok(Date.now() - started < 5_000);
      assert.equal((await statusOf(poison)).status, 'PENDING', 'while the poison is still being worked out');
    }

    await eventually(
      async () => ((await statusOf(poison)).status === 'FAILED' ? true : undefined),
      60_000,
      'the poison to fail',
    );
    assert.deepEqual(await statusOf(poison), { status: 'FAILED', error_code: '40P01' });
    await eventually(
      async () =>
        (await db.count(`SELECT count(*) AS n FROM batch.operation_states WHERE status = 'PENDING'`)) === 0
          ? true
          : undefined,
      30_000,
      'the rest applied',
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.ledger`), 99);
    const notified = await eventually(async () => caller.notified.get(poison), 10_000, 'the failure notified');
    assert.deepEqual([notified.status, notified.error?.code], ['FAILED', '40P01']);
  });
});
