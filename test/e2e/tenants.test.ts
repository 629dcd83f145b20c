import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Caller, createCaller, steadyLoad, TestDb } from '../support/harness';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';

/**
 * One caller's bad day stays its own (built service, real database and broker): what a client does, or has done to
 * it, never reaches another client's work.
 */
describe("one caller's bad day stays its own (built service)", () => {
  let service: ServiceProcess;
  let db: TestDb;
  const callers: Caller[] = [];

  before(async () => {
    service = await startService(serviceEnv());
    db = new TestDb(service.env.DB_NAME);
    for (const table of ['revoked_ledger', 'narrowed_ledger', 'other_ledger'])
      await db.query(`CREATE TABLE public.${table} (id bigserial PRIMARY KEY, ref text NOT NULL)`);
  });

  after(async () => {
    for (const caller of callers) await caller.close();
    await db?.close();
    await service?.destroy();
  });

  async function clientId(name: string): Promise<string> {
    const { body } = await http<{ id: string; name: string }[]>(service, 'GET', '/api/clients', service.adminKey);
    return body.find((c) => c.name === name)!.id;
  }

  /**
   * Under 300 creates in flight, `change` (a revocation or a narrowed grant) is answered: no operation of the client
   * on `target` completes after the answer; the others end CANCELLED or FAILED with FORBIDDEN.
   */
  async function nothingAppliedAfter(
    name: string,
    targets: string[],
    target: string,
    change: (id: string) => Promise<number>,
  ) {
    const caller = await createCaller(service, name, targets);
    callers.push(caller);
    const id = await clientId(name);
    const load = steadyLoad(caller, 300, target);
    const rows = () => db.count(`SELECT count(*) AS n FROM public.${target}`);
    await eventually(async () => ((await rows()) >= 500 ? true : undefined), 30_000, 'operations applied under load');
    assert.equal(await change(id), 204);
    const appliedWhenAnswered = await rows();
    await load.stop();
    await eventually(
      async () =>
        (await db.count(
          `SELECT count(*) AS n FROM batch.operation_states WHERE client_id = $1 AND target = $2 AND status = 'PENDING'`,
          [id, `public.${target}`],
        )) === 0
          ? true
          : undefined,
      60_000,
      'every operation settled',
    );
    assert.equal(await rows(), appliedWhenAnswered, 'nothing applied after the answer');
    const outcomes = await db.query<{ status: string; error_code: string | null; n: string }>(
      `SELECT status, error_code, count(*) AS n FROM batch.operation_states WHERE client_id = $1 AND target = $2
        GROUP BY 1, 2 ORDER BY 1, 2`,
      [id, `public.${target}`],
    );
    for (const { status, error_code } of outcomes)
      assert.ok(status === 'COMPLETED' || error_code === 'FORBIDDEN', `${status} ${error_code}`);
    const completed = outcomes.find((o) => o.status === 'COMPLETED');
    assert.equal(Number(completed?.n ?? 0), appliedWhenAnswered);
    return { stored: load.acknowledged.length };
  }

  it('applies nothing of a revoked client after the revocation is answered, under load', async () => {
    await nothingAppliedAfter('revokee', ['revoked_ledger'], 'revoked_ledger', async (id) => {
      const { status } = await http(service, 'DELETE', `/api/clients/${id}`, service.adminKey);
      return status;
    });
  });

  it('applies nothing on a target a client lost after the change is answered, under load', async () => {
    await nothingAppliedAfter('narrowed', ['narrowed_ledger', 'other_ledger'], 'narrowed_ledger', async (id) => {
      const { status } = await http(service, 'PATCH', `/api/clients/${id}`, service.adminKey, {
        targets: ['other_ledger'],
      });
      return status === 200 ? 204 : status;
    });
  });
});
