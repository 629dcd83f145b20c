import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { Caller, createCaller, settleAll, steadyLoad, TestDb } from '../support/harness';
import { openRawRpc } from '../support/raw-rpc';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { dbClientConfig, withoutBroker } from '../support/shared-services';

/**
 * One caller's bad day stays its own (built service, real database and broker): what a client does, or has done to
 * it, never reaches another client's work.
 */
describe("one caller's bad day stays its own (built service)", () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  const callers: Caller[] = [];

  before(async () => {
    // the largest chunks allowed, so that one caller's failures can fill one
    service = await startService(serviceEnv({ BATCH_PROCESS_OPERATION_LIMIT: '50000' }));
    db = new TestDb(service.env.DB_NAME);
    for (const table of ['revoked_ledger', 'narrowed_ledger', 'other_ledger', 'calm_ledger'])
      await db.query(`CREATE TABLE public.${table} (id bigserial PRIMARY KEY, ref text NOT NULL)`);
    await db.query(`CREATE TABLE public.taken (id int PRIMARY KEY)`);
    await db.query(`INSERT INTO public.taken SELECT generate_series(1, 10000)`);
    await db.query(`CREATE TABLE public.stock (sku text PRIMARY KEY, qty int NOT NULL)`);
    await db.query(`INSERT INTO public.stock VALUES ('A-1', 10)`);
    await db.query(`CREATE TABLE public.blobs (id int PRIMARY KEY, a text, b text, c text)`);
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

  it("fails 10,000 operations of one caller that the database refuses, holding few locks, while another caller's are applied", async () => {
    const careless = await createCaller(service, 'careless', ['taken'], 60_000);
    const careful = await createCaller(service, 'careful', ['calm_ledger']);
    callers.push(careless, careful);
    for (let from = 0; from < 10_000; from += 1000)
      await careless.rpc.createOperations(
        Array.from({ length: 1000 }, (_, i) => ({
          target: 'taken',
          type: 'insert' as const,
          values: { id: from + i + 1 },
        })),
      );
    const locks = new Client(dbClientConfig(service.env.DB_NAME));
    await locks.connect();
    let most = 0;
    let watching = true;
    const watched = (async () => {
      while (watching) {
        const { rows } = await locks.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()`,
        );
        most = Math.max(most, rows[0].n);
      }
    })();
    try {
      const { operations } = await careful.rpc.createOperations(
        Array.from({ length: 5 }, (_, i) => ({
          target: 'calm_ledger',
          type: 'insert' as const,
          values: { ref: `calm-${i}` },
        })),
      );
      await eventually(
        async () =>
          (await db.count(
            `SELECT count(*) AS n FROM batch.operation_states WHERE id = ANY ($1::bigint[]) AND status = 'COMPLETED'`,
            [operations.map((o) => o.id)],
          )) === 5
            ? true
            : undefined,
        20_000,
        "the other caller's operations applied",
      );
      const settled = await settleAll(db, careless, 120_000);
      assert.equal(settled.filter((o) => o.status === 'FAILED').length, 10_000);
    } finally {
      watching = false;
      await watched;
      await locks.end();
    }
    assert.ok(most < 200, `${most} locks held at most in the service's database`);
  });

  it('holds back only the target of a row another application keeps locked', async () => {
    const caller = await createCaller(service, 'stocker', ['stock', 'other_ledger']);
    callers.push(caller);
    const outside = new Client(dbClientConfig(service.env.DB_NAME));
    await outside.connect();
    try {
      await outside.query('BEGIN');
      await outside.query(`SELECT * FROM public.stock WHERE sku = 'A-1' FOR UPDATE`);
      const increment = await caller.rpc.createOperation({
        target: 'stock',
        type: 'increment',
        key: { sku: 'A-1' },
        values: { qty: 5 },
      });
      const { operations } = await caller.rpc.createOperations(
        Array.from({ length: 5 }, (_, i) => ({
          target: 'other_ledger',
          type: 'insert' as const,
          values: { ref: `free-${i}` },
        })),
      );
      const statusOf = async (id: string) =>
        (await db.query<{ status: string }>(`SELECT status FROM batch.operation_states WHERE id = $1`, [id]))[0].status;
      for (const { id } of operations)
        await eventually(
          async () => ((await statusOf(id)) === 'COMPLETED' ? true : undefined),
          10_000,
          'the free target',
        );
      assert.equal(await statusOf(increment.id), 'PENDING', 'the locked row waits');
      await outside.query('COMMIT');
      await eventually(
        async () => ((await statusOf(increment.id)) === 'COMPLETED' ? true : undefined),
        40_000,
        'the increment',
      );
      assert.deepEqual(await db.query(`SELECT qty FROM public.stock WHERE sku = 'A-1'`), [{ qty: 15 }]);
    } finally {
      await outside.end();
    }
  });

  it('refuses wrong keys without a query each, repeated or all different', async () => {
    const { connection, channel, replyQueue, replies } = await openRawRpc<{ err?: { code: string } }>();
    const lookups = async () => {
      const [row] = await db.query<{ n: string }>(
        `SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables WHERE schemaname = 'batch' AND relname = 'clients'`,
      );
      return Number(row.n);
    };
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500)); // statistics of what came before published
      const before = await lookups();
      const sent: string[] = [];
      for (let i = 0; i < 4000; i++) {
        const correlationId = randomUUID();
        const body = {
          pattern: 'createOperation',
          id: correlationId,
          data: { target: 'calm_ledger', type: 'insert', values: { ref: 'x' } },
        };
        channel.sendToQueue(service.env.BATCH_SERVICE_RMQ_QUEUE, Buffer.from(JSON.stringify(body)), {
          replyTo: replyQueue,
          correlationId,
          headers: { 'x-api-key': i % 2 === 0 ? 'the same wrong key' : `bsk_${randomUUID()}` },
        });
        sent.push(correlationId);
      }
      await eventually(async () => (sent.every((id) => replies.has(id)) ? true : undefined), 60_000, 'every answer');
      for (const id of sent) assert.equal(replies.get(id)?.err?.code, 'UNAUTHENTICATED');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const queries = (await lookups()) - before;
      assert.ok(queries < 400, `${queries} lookups of batch.clients for 4,000 wrong keys`);
    } finally {
      await connection.close();
    }
  });

  it('bounds the REST bytes in flight: 200 creates of 3 MB at once are answered 201 or 429, in bounded memory', async () => {
    const caller = await createCaller(service, 'bulky', ['blobs']);
    callers.push(caller);
    const big = 'x'.repeat(950_000);
    const statuses = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const response = await fetch(`${service.url}/api/operations`, {
          method: 'POST',
          headers: { 'x-api-key': caller.apiKey, 'content-type': 'application/json' },
          body: `{"target":"blobs","type":"insert","values":{"id":${i},"a":"${big}","b":"${big}","c":"${big}"}}`,
        });
        const body = (await response.json()) as { code?: string; details?: { retryAfterMs?: number } };
        if (response.status === 429) assert.ok(body.code === 'RATE_LIMITED' && body.details!.retryAfterMs! > 0);
        return response.status;
      }),
    );
    const counts = new Map<number, number>();
    for (const status of statuses) counts.set(status, (counts.get(status) ?? 0) + 1);
    assert.deepEqual(
      [...counts.keys()].filter((status) => status !== 201 && status !== 429),
      [],
      JSON.stringify([...counts]),
    );
    assert.ok((counts.get(201) ?? 0) > 0, 'some stored');
    const peak = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${service.process.pid}/status`, 'utf8'))![1]);
    assert.ok(peak < 1024 * 1024, `peak resident memory ${Math.round(peak / 1024)} MB`);
  });
});
