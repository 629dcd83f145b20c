import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BatchServiceClient, BatchServiceError } from '../../src/client';
import { createCaller, RMQ_URL, settleAll, TestDb, type Caller } from '../support/harness';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/** Keys, isolation and rate limits across two API instances (built service, real broker, database and Redis). */
describe('security: keys, isolation, rate limits (two API instances)', () => {
  if (withoutBroker()) return;
  const instances: ServiceProcess[] = [];
  let db: TestDb;
  let alice: Caller;
  let bob: Caller;

  before(async () => {
    const env = serviceEnv();
    instances.push(await startService(env), await startService({ ...env, BATCH_ROLE: 'api' }));
    db = new TestDb(env.DB_NAME);
    await db.query(`CREATE TABLE public.notes (id int PRIMARY KEY, body text)`);
    await db.query(`CREATE TABLE public.private_notes (id int PRIMARY KEY)`);
    alice = await createCaller(instances[0], 'alice', ['notes']);
    bob = await createCaller(instances[0], 'bob', ['notes', 'private_notes']);
  });

  after(async () => {
    await alice?.close();
    await bob?.close();
    for (const instance of instances) await instance.stop();
    await db?.close();
    await instances[0]?.destroy();
  });

  const status = (instance: ServiceProcess, key: string) =>
    http(instance, 'GET', '/api/targets', key).then((r) => r.status);
  /** What another instance answers once PostgreSQL's notification of a change of clients has reached it. */
  const soon = <T>(answer: () => Promise<T>, expected: T) =>
    eventually(async () => ((await answer()) === expected ? expected : undefined), 2000, `${String(expected)}`);

  it('stores keys only as keyed hashes', async () => {
    const stored = await db.query<{ api_key_hash: string }>(
      `SELECT api_key_hash FROM batch.clients WHERE name = 'alice'`,
    );
    assert.match(stored[0].api_key_hash, /^[0-9a-f]{64}$/);
    assert.notEqual(stored[0].api_key_hash, alice.apiKey);
    assert.match(alice.apiKey, /^bsk_[A-Za-z0-9_-]{43}$/, '256 bits of randomness');
    const listed = await http<Record<string, unknown>[]>(instances[0], 'GET', '/api/clients', instances[0].adminKey);
    assert.ok(
      listed.body.every((c) => !('apiKey' in c) && !('apiKeyHash' in c)),
      'keys are never listed',
    );
  });

  it('rotates and revokes keys with effect at once on the instance that did it, and as it commits on the others', async () => {
    const created = await http<{ id: string; apiKey: string }>(
      instances[0],
      'POST',
      '/api/clients',
      instances[0].adminKey,
      { name: 'carol', targets: ['notes'] },
    );
    for (const instance of instances) assert.equal(await status(instance, created.body.apiKey), 200);
    const rotated = await http<{ apiKey: string }>(
      instances[1],
      'POST',
      `/api/clients/${created.body.id}/rotate-key`,
      instances[1].adminKey,
    );
    assert.equal(rotated.status, 200);
    assert.equal(await status(instances[1], created.body.apiKey), 401, 'the old key stops working at once');
    await soon(() => status(instances[0], created.body.apiKey), 401);
    for (const instance of instances) assert.equal(await status(instance, rotated.body.apiKey), 200);
    const bearer = await fetch(`${instances[1].url}/api/targets`, {
      headers: { authorization: `Bearer ${rotated.body.apiKey}` },
    });
    assert.equal(bearer.status, 200, 'Authorization: Bearer works too');
    assert.equal(
      (await http(instances[0], 'DELETE', `/api/clients/${created.body.id}`, instances[0].adminKey)).status,
      204,
    );
    assert.equal(await status(instances[0], rotated.body.apiKey), 401, 'a revoked key stops working at once');
    await soon(() => status(instances[1], rotated.body.apiKey), 401);
    const rpc = new BatchServiceClient({
      url: RMQ_URL,
      queue: instances[0].env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey: rotated.body.apiKey,
      timeoutMs: 10_000,
    });
    await assert.rejects(rpc.getOperation('1'), (e: BatchServiceError) => e.code === 'UNAUTHENTICATED');
    await rpc.close();
  });

  it('shows a client only its own operations, executions and notifications', async () => {
    const mine = await alice.rpc.createOperation({ target: 'notes', type: 'insert', values: { id: 1, body: 'alice' } });
    const theirs = await bob.rpc.createOperation({ target: 'private_notes', type: 'insert', values: { id: 1 } });
    await settleAll(db, alice);
    await settleAll(db, bob);
    assert.ok(
      !alice.notified.has(theirs.id) && !bob.notified.has(mine.id),
      'notifications go to their own client only',
    );
    const list = await http<{ items: { id: string }[] }>(instances[0], 'GET', '/api/operations', alice.apiKey);
    assert.deepEqual(
      list.body.items.map((o) => o.id),
      [mine.id],
    );
    const bobsExecution = (await bob.rpc.getOperation(theirs.id)).executionId!;
    const alicesExecution = (await alice.rpc.getOperation(mine.id)).executionId!;
    const executions = await http<{ items: { id: string }[] }>(instances[0], 'GET', '/api/executions', alice.apiKey);
    assert.ok(executions.body.items.every((e) => e.id !== bobsExecution || e.id === alicesExecution));
    if (bobsExecution !== alicesExecution) {
      assert.equal((await http(instances[0], 'GET', `/api/executions/${bobsExecution}`, alice.apiKey)).status, 404);
    }
    const own = await http<{ steps: { target: string }[] }>(
      instances[0],
      'GET',
      `/api/executions/${alicesExecution}`,
      alice.apiKey,
    );
    assert.ok(
      own.body.steps.every((s) => s.target === 'public.notes'),
      'steps on targets alice may not write are hidden',
    );
    const all = await http<{ items: unknown[] }>(instances[0], 'GET', '/api/operations', instances[0].adminKey);
    assert.equal(all.body.items.length, 2, 'an admin sees all');
    await assert.rejects(
      alice.rpc.createOperation({ target: 'private_notes', type: 'insert', values: { id: 2 } }),
      (e: BatchServiceError) => e.code === 'FORBIDDEN',
    );
  });

  it("a client created with admin: true is an admin: it lists clients, sees another's operation", async () => {
    const created = await http<{ apiKey: string }>(instances[0], 'POST', '/api/clients', instances[0].adminKey, {
      name: 'auditor',
      targets: ['notes'],
      admin: true,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const auditor = created.body.apiKey;
    const [{ id: bobs }] = await db.query<{ id: string }>(
      `SELECT o.id FROM batch.operations o JOIN batch.clients c ON c.id = o.client_id WHERE c.name = 'bob' LIMIT 1`,
    );
    // what a client that is no admin is refused, for contrast
    assert.equal((await http(instances[0], 'GET', '/api/clients', alice.apiKey)).status, 403);
    assert.equal((await http(instances[0], 'GET', `/api/operations/${bobs}`, alice.apiKey)).status, 403);

    for (const instance of instances) {
      // the other instance knows the new client once its row has committed
      await soon(() => status(instance, auditor), 200);
      const clients = await http<{ name: string; admin: boolean }[]>(instance, 'GET', '/api/clients', auditor);
      assert.equal(clients.status, 200);
      assert.deepEqual(
        clients.body
          .filter((c) => ['alice', 'auditor'].includes(c.name))
          .map((c) => [c.name, c.admin])
          .sort(),
        [
          ['alice', false],
          ['auditor', true],
        ],
      );
      const operation = await http<{ id: string }>(instance, 'GET', `/api/operations/${bobs}`, auditor);
      assert.deepEqual([operation.status, operation.body.id], [200, bobs], "bob's operation");
    }
  });

  it("changes a client's grants and rate limit with effect from its next request, on every instance as it commits", async () => {
    const created = await http<{ id: string; apiKey: string }>(
      instances[0],
      'POST',
      '/api/clients',
      instances[0].adminKey,
      { name: 'dave', targets: ['notes'] },
    );
    const { id, apiKey } = created.body;
    const create = (instance: ServiceProcess, target: string, row: number) =>
      http<{ code?: string }>(instance, 'POST', '/api/operations', apiKey, {
        target,
        type: 'insert',
        values: { id: row },
      }).then((r) => r.body.code ?? r.status);
    const change = (body: object) =>
      http<Record<string, unknown>>(instances[1], 'PATCH', `/api/clients/${id}`, instances[1].adminKey, body);
    assert.equal(await create(instances[0], 'private_notes', 10), 'FORBIDDEN');

    const granted = await change({ targets: ['notes', 'private_notes'], rateLimitPerSecond: 1 });
    assert.equal(granted.status, 200);
    assert.deepEqual(
      [granted.body.name, granted.body.targets, granted.body.admin, granted.body.rateLimitPerSecond],
      ['dave', ['notes', 'private_notes'], false, 1],
    );
    assert.deepEqual(
      [await create(instances[1], 'private_notes', 10), await create(instances[1], 'notes', 10)],
      [201, 'RATE_LIMITED'],
    );
    await soon(async () => (await create(instances[0], 'private_notes', 20)) !== 'FORBIDDEN', true);

    const unlimited = await change({ rateLimitPerSecond: null });
    assert.deepEqual(
      [unlimited.body.targets, unlimited.body.rateLimitPerSecond],
      [['notes', 'private_notes'], null],
      'only the fields given change',
    );
    for (let row = 11; row < 15; row++) assert.equal(await create(instances[1], 'notes', row), 201);
    const listed = await http<{ id: string; rateLimitPerSecond: number | null }[]>(
      instances[0],
      'GET',
      '/api/clients',
      instances[0].adminKey,
    );
    assert.equal(listed.body.find((c) => c.id === id)?.rateLimitPerSecond, null);

    assert.equal((await http(instances[0], 'DELETE', `/api/clients/${id}`, instances[0].adminKey)).status, 204);
    assert.equal((await change({ targets: ['*'] })).status, 404, 'a revoked client stays revoked');
  });

  it('holds grants when operations are applied: retry re-checks them, a narrowed grant or a revocation cancels what is pending', async () => {
    const created = await http<{ id: string; apiKey: string }>(
      instances[0],
      'POST',
      '/api/clients',
      instances[0].adminKey,
      { name: 'erin', targets: ['notes', 'private_notes'] },
    );
    const { id, apiKey } = created.body;
    const create = (body: object) =>
      http<{ id: string }>(instances[1], 'POST', '/api/operations', apiKey, body).then((r) => r.body.id);
    const read = (operation: string) =>
      http<{ status: string; error: { code: string } | null }>(
        instances[0],
        'GET',
        `/api/operations/${operation}`,
        instances[0].adminKey,
      ).then((r) => r.body);
    const later = new Date(Date.now() + 3_600_000).toISOString();
    await create({ target: 'private_notes', type: 'insert', values: { id: 500 } });
    const failed = await create({ target: 'private_notes', type: 'insert', values: { id: 500 } });
    for (let i = 0; (await read(failed)).status !== 'FAILED'; i++) {
      assert.ok(i < 200, 'the duplicate failed');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const scheduledPrivate = await create({
      target: 'private_notes',
      type: 'insert',
      values: { id: 501 },
      notBefore: later,
    });
    const scheduledNote = await create({ target: 'notes', type: 'insert', values: { id: 501 }, notBefore: later });

    assert.equal(
      (await http(instances[1], 'PATCH', `/api/clients/${id}`, instances[1].adminKey, { targets: ['notes'] })).status,
      200,
    );
    assert.deepEqual(
      await read(scheduledPrivate).then((o) => [o.status, o.error?.code]),
      ['CANCELLED', 'FORBIDDEN'],
      'no longer granted: cancelled',
    );
    assert.equal((await read(scheduledNote)).status, 'PENDING', 'still granted: kept');
    const retried = await http<{ code: string }>(instances[0], 'POST', `/api/operations/${failed}/retry`, apiKey);
    assert.deepEqual([retried.status, retried.body.code], [403, 'FORBIDDEN']);
    assert.equal((await read(failed)).status, 'FAILED');

    assert.equal((await http(instances[0], 'DELETE', `/api/clients/${id}`, instances[0].adminKey)).status, 204);
    assert.deepEqual(
      await read(scheduledNote).then((o) => [o.status, o.error?.code]),
      ['CANCELLED', 'FORBIDDEN'],
      'revoked: everything pending is cancelled',
    );
  });

  it('rate-limits a client over both transports with retryAfterMs, per client', async () => {
    const created = await http<{ apiKey: string }>(instances[0], 'POST', '/api/clients', instances[0].adminKey, {
      name: 'slow',
      targets: ['notes'],
      rateLimitPerSecond: 5,
    });
    const key = created.body.apiKey;
    const rpc = new BatchServiceClient({
      url: RMQ_URL,
      queue: instances[0].env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey: key,
      timeoutMs: 10_000,
    });
    // All at once: sent one after another, on a busy machine each answer can take longer than the bucket takes to
    // gain a token back (200 ms), and more than five get through.
    const responses = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        http<{ code?: string; details?: { retryAfterMs: number } }>(instances[i % 2], 'POST', '/api/operations', key, {
          target: 'notes',
          type: 'insert',
          values: { id: 100 + i },
        }),
      ),
    );
    const outcomes = responses.map((r) => (r.status === 201 ? 'ok' : `${r.status} ${r.body.code}`));
    assert.deepEqual(
      [outcomes.filter((o) => o === 'ok').length, outcomes.filter((o) => o === '429 RATE_LIMITED').length],
      [5, 3],
      `a bucket of 5 shared by both instances: ${outcomes}`,
    );
    for (const response of responses.filter((r) => r.status === 429))
      assert.ok(response.body.details!.retryAfterMs > 0 && response.body.details!.retryAfterMs <= 1000);
    await assert.rejects(
      rpc.createOperation({ target: 'notes', type: 'insert', values: { id: 200 } }),
      (e: BatchServiceError) => e.code === 'RATE_LIMITED' && (e.details as { retryAfterMs: number }).retryAfterMs > 0,
    );
    assert.equal(await status(instances[0], alice.apiKey), 200, 'other clients are not affected');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.ok(
      (await rpc.createOperation({ target: 'notes', type: 'insert', values: { id: 201 } })).id,
      'allowed again after the wait',
    );
    await rpc.close();
  });

  it('documents the auth schemes and the error responses in Swagger', async () => {
    const docs = await http<{
      components: { securitySchemes: Record<string, { type: string }> };
      paths: Record<string, Record<string, { responses: Record<string, unknown>; security: unknown[] }>>;
    }>(instances[0], 'GET', '/api/docs-json', null);
    assert.deepEqual(Object.keys(docs.body.components.securitySchemes).sort(), ['api-key', 'bearer']);
    const create = docs.body.paths['/api/operations'].post;
    for (const code of ['201', '400', '401', '403', '413', '429', '503'])
      assert.ok(create.responses[code], `POST /api/operations documents ${code}`);
    assert.ok(docs.body.paths['/api/operations/{id}/cancel'].post.responses['409']);
  });
});
