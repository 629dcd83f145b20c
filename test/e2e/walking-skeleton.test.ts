import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import {
  BatchServiceClient,
  BatchServiceError,
  ICreateBatchOperationRequest,
  IOperationsSettledEvent,
  SettledEventsConsumer,
} from '../../src/client';
import { eventually, http, RMQ_URL, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { deliveredEvents, type DeliveredEvents } from '../support/raw-rpc';
import { dbClientConfig, withoutBroker } from '../support/shared-services';

/**
 * The whole path as another service sees it: the built service started as a user would, a client created over
 * REST, operations sent over RabbitMQ with src/client, rows in the target table, settled notifications.
 */
describe('end to end: insert operations over RabbitMQ (built service, real broker and database)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: Client;
  let caller: BatchServiceClient;
  let apiKey: string;
  let consumer: SettledEventsConsumer;
  const settled = new Map<string, IOperationsSettledEvent['operations'][number]>();
  let notifications = 0;
  /** Every operations.settled of the caller as the broker delivers it, with the message's properties. */
  let bookingEvents: DeliveredEvents<IOperationsSettledEvent>;

  before(async () => {
    service = await startService(serviceEnv());
    db = new Client(dbClientConfig(service.env.DB_NAME));
    await db.connect();
    await db.query(
      `CREATE TABLE public.reservations (id bigint PRIMARY KEY, seat text NOT NULL UNIQUE, guest varchar(40), created_at timestamptz DEFAULT now())`,
    );
    await db.query(`CREATE TABLE public.audit (id bigserial PRIMARY KEY, note text)`);
    const created = await http<{ id: string; name: string; apiKey: string }>(
      service,
      'POST',
      '/api/clients',
      service.adminKey,
      {
        name: 'booking',
        targets: ['reservations'],
      },
    );
    assert.equal(created.status, 201);
    assert.equal(created.body.name, 'booking');
    apiKey = created.body.apiKey;
    caller = new BatchServiceClient({
      url: RMQ_URL,
      queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey,
      timeoutMs: 15_000,
    });
    consumer = new SettledEventsConsumer({
      url: RMQ_URL,
      exchange: service.env.BATCH_SERVICE_EVENTS_EXCHANGE,
      client: 'booking',
    });
    await consumer.start((event) => {
      notifications += 1;
      assert.equal(event.type, 'operations.settled');
      assert.equal(event.client, 'booking');
      for (const operation of event.operations) settled.set(operation.id, operation);
    });
    bookingEvents = await deliveredEvents(service.env.BATCH_SERVICE_EVENTS_EXCHANGE, 'operations.settled.booking');
  });

  after(async () => {
    await caller?.close();
    await consumer?.stop();
    await bookingEvents?.close();
    await db?.end();
    const code = await service.stop();
    await service.destroy();
    assert.equal(code, 0, `the service exits cleanly on SIGTERM:\n${service.logs()}`);
  });

  it('creates, applies and notifies one insert', async () => {
    const created = await caller.createOperation({
      target: 'reservations',
      type: 'insert',
      values: { id: 1, seat: '1A', guest: 'Ada' },
      idempotencyKey: 'r-1',
      label: 'RESERVE',
    });
    assert.equal(created.status, 'PENDING');
    assert.equal(created.duplicate, false);
    const notified = await eventually(async () => settled.get(created.id), 15_000, 'the settled notification');
    assert.deepEqual(notified, {
      id: created.id,
      status: 'COMPLETED',
      rowsAffected: 1,
      error: null,
      target: 'public.reservations',
      type: 'insert',
      idempotencyKey: 'r-1',
      label: 'RESERVE',
    });
    // persistent, so that a broker restarted before the caller read it still holds it for its durable queue
    const message = await eventually(
      async () => bookingEvents.delivered.find((m) => m.event.operations.some((o) => o.id === created.id)),
      15_000,
      'the settled notification, as the broker delivers it',
    );
    assert.deepEqual([message.routingKey, message.deliveryMode], ['operations.settled.booking', 2]);
    const { rows } = await db.query('SELECT id, seat, guest FROM public.reservations WHERE id = 1');
    assert.deepEqual(rows, [{ id: '1', seat: '1A', guest: 'Ada' }]);
    const fetched = await caller.getOperation(created.id);
    assert.equal(fetched.status, 'COMPLETED');
    assert.equal(fetched.rowsAffected, 1);
    assert.ok(fetched.executionId);
    const again = await caller.createOperation({
      target: 'reservations',
      type: 'insert',
      values: { id: 1, seat: '1A' },
      idempotencyKey: 'r-1',
    });
    assert.equal(again.id, created.id);
    assert.equal(again.duplicate, true);
  });

  it('applies 10,000 inserts sent in bulk and one by one, each exactly once, each notified', async () => {
    const bulk = await Promise.all(
      Array.from({ length: 9 }, (_, m) =>
        caller.createOperations(
          Array.from({ length: 1000 }, (_, i) => ({
            target: 'reservations',
            type: 'insert' as const,
            values: { id: 1000 + m * 1000 + i, seat: `B${m}-${i}` },
          })),
        ),
      ),
    );
    const single = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        caller.createOperation({ target: 'reservations', type: 'insert', values: { id: 100_000 + i, seat: `S-${i}` } }),
      ),
    );
    const ids = [...bulk.flatMap((b) => b.operations.map((o) => o.id)), ...single.map((s) => s.id)];
    assert.equal(new Set(ids).size, 10_000);
    for (const b of bulk) {
      const batchIds = b.operations.map((o) => BigInt(o.id));
      assert.ok(
        batchIds.every((id, i) => i === 0 || id > batchIds[i - 1]),
        'ids increase in request order',
      );
    }
    await eventually(
      async () => (ids.every((id) => settled.has(id)) ? true : undefined),
      60_000,
      'all 10,000 notifications',
    );
    assert.ok(ids.every((id) => settled.get(id)!.status === 'COMPLETED'));
    const { rows } = await db.query(
      `SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM public.reservations WHERE id >= 1000`,
    );
    assert.deepEqual(rows[0], { n: 10_000, d: 10_000 });
    assert.ok(notifications < 10_000, `notifications are batched per chunk (${notifications} messages)`);
  });

  it('fails a unique violation in the middle of a chunk while the rest of it completes', async () => {
    const { operations } = await caller.createOperations([
      { target: 'reservations', type: 'insert', values: { id: 500, seat: 'M1' } },
      { target: 'reservations', type: 'insert', values: { id: 501, seat: '1A' } }, // seat 1A is taken
      { target: 'reservations', type: 'insert', values: { id: 502, seat: 'M3' } },
    ]);
    const outcomes = await eventually(async () =>
      operations.every((o) => settled.has(o.id)) ? operations.map((o) => settled.get(o.id)!) : undefined,
    );
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['COMPLETED', 'FAILED', 'COMPLETED'],
    );
    assert.equal(outcomes[1].error!.code, '23505');
    assert.match(outcomes[1].error!.message, /duplicate key value violates unique constraint/);
    const failed = await caller.getOperation(operations[1].id);
    assert.deepEqual(failed.error, outcomes[1].error);
    const { rows } = await db.query('SELECT id FROM public.reservations WHERE id BETWEEN 500 AND 502 ORDER BY id');
    assert.deepEqual(
      rows.map((r) => r.id),
      ['500', '502'],
    );
    const execution = await http<{ writeSkipCount: number; rollbackCount: number; steps: unknown[] }>(
      service,
      'GET',
      `/api/executions/${failed.executionId}`,
      apiKey,
    );
    assert.equal(execution.status, 200);
    assert.equal(execution.body.writeSkipCount, 1);
    assert.equal(execution.body.rollbackCount, 1);
    assert.equal(execution.body.steps.length, 1);
  });

  it('notifies deletes of rows gone, in bulk, as completed with no row affected', async () => {
    const settle = async (ops: ICreateBatchOperationRequest[]) => {
      const { operations } = await caller.createOperations(ops);
      return eventually(async () =>
        operations.every((o) => settled.has(o.id)) ? operations.map((o) => settled.get(o.id)!) : undefined,
      );
    };
    await settle(
      [700, 701, 702].map((id) => ({ target: 'reservations', type: 'insert', values: { id, seat: `G${id}` } })),
    );
    const deleted = [700, 7_000_000, 701, 702, 701].map((id) => ({
      target: 'reservations',
      type: 'delete',
      key: { id },
    }));
    const outcomes = await settle(deleted as ICreateBatchOperationRequest[]);
    assert.deepEqual(
      outcomes.map((o) => [o.status, o.rowsAffected, o.error]),
      [1, 0, 1, 1, 0].map((rows) => ['COMPLETED', rows, null]),
    );
    assert.equal((await caller.getOperation(outcomes[1].id)).rowsAffected, 0);
    assert.equal((await caller.getOperation(outcomes[2].id)).rowsAffected, 1);
  });

  it('rejects bad operations with the contract error and stores nothing', async () => {
    const before = (await db.query('SELECT count(*)::int AS n FROM batch.operations')).rows[0].n;
    const cases: [Parameters<BatchServiceClient['createOperation']>[0], string][] = [
      [{ target: 'reservations', type: 'insert', values: { id: 9, seat: 'Z', color: 'red' } }, 'UNKNOWN_COLUMN'],
      [{ target: 'nowhere', type: 'insert', values: { id: 9 } }, 'UNKNOWN_TARGET'],
      [{ target: 'audit', type: 'insert', values: { note: 'x' } }, 'FORBIDDEN'],
      [{ target: 'reservations', type: 'insert', values: { id: 'nine', seat: 'Z' } }, 'VALIDATION_FAILED'],
      [{ target: 'reservations', type: 'insert', values: { id: 9 } }, 'VALIDATION_FAILED'],
      [
        { target: 'reservations', type: 'insert', values: { id: 9, seat: 'Z' }, extra: true } as never,
        'VALIDATION_FAILED',
      ],
    ];
    for (const [operation, code] of cases) {
      await assert.rejects(caller.createOperation(operation), (error: BatchServiceError) => {
        assert.ok(error instanceof BatchServiceError, String(error));
        assert.equal(error.code, code, `${JSON.stringify(operation)}: ${error.message}`);
        return true;
      });
    }
    await assert.rejects(
      caller.createOperations([
        { target: 'reservations', type: 'insert', values: { id: 9, seat: 'Z' } },
        { target: 'reservations', type: 'insert', values: { id: 10, seat: 'Z', x: 1 } },
      ]),
      (error: BatchServiceError) => error.code === 'UNKNOWN_COLUMN',
    );
    const stranger = new BatchServiceClient({
      url: RMQ_URL,
      queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey: 'bsk_forged',
      timeoutMs: 15_000,
    });
    await assert.rejects(
      stranger.createOperation({ target: 'reservations', type: 'insert', values: { id: 9, seat: 'Z' } }),
      (e: BatchServiceError) => e.code === 'UNAUTHENTICATED',
    );
    await stranger.close();
    const rest = await http<{ status: string; code: string }>(service, 'POST', '/api/operations', apiKey, {
      target: 'reservations',
      type: 'insert',
      values: { id: 9, seat: 'Z', color: 1 },
    });
    assert.equal(rest.status, 400);
    assert.deepEqual([rest.body.status, rest.body.code], ['error', 'UNKNOWN_COLUMN']);
    assert.equal((await db.query('SELECT count(*)::int AS n FROM batch.operations')).rows[0].n, before);
  });

  it('cancels a scheduled operation over RPC, and answers CONFLICT for a settled one', async () => {
    const scheduled = await caller.createOperation({
      target: 'reservations',
      type: 'insert',
      values: { id: 700, seat: 'L1' },
      notBefore: new Date(Date.now() + 3_600_000).toISOString(),
    });
    const cancelled = await caller.cancelOperation(scheduled.id);
    assert.equal(cancelled.status, 'CANCELLED');
    await assert.rejects(caller.cancelOperation(scheduled.id), (e: BatchServiceError) => e.code === 'CONFLICT');
    await assert.rejects(caller.getOperation('123456789012'), (e: BatchServiceError) => e.code === 'NOT_FOUND');
  });

  it('serves the REST inspection API and Swagger', async () => {
    const list = await http<{ items: { id: string; status: string }[]; nextCursor: string | null }>(
      service,
      'GET',
      '/api/operations?limit=5&status=COMPLETED',
      apiKey,
    );
    assert.equal(list.status, 200);
    assert.equal(list.body.items.length, 5);
    assert.ok(list.body.items.every((o) => o.status === 'COMPLETED'));
    assert.ok(list.body.nextCursor);
    // the cursor followed to the end: every completed operation once, newest first
    const seen = list.body.items.map((o) => o.id);
    type Page = { items: { id: string }[]; nextCursor: string | null };
    let cursor: string | null = list.body.nextCursor;
    while (cursor) {
      const page: { status: number; body: Page } = await http<Page>(
        service,
        'GET',
        `/api/operations?limit=5&status=COMPLETED&cursor=${encodeURIComponent(cursor)}`,
        apiKey,
      );
      assert.equal(page.status, 200);
      seen.push(...page.body.items.map((o) => o.id));
      cursor = page.body.nextCursor;
    }
    assert.deepEqual(
      seen,
      [...new Set(seen)].sort((a, b) => (BigInt(b) > BigInt(a) ? 1 : -1)),
    );
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM batch.operation_states s JOIN batch.clients c ON c.id = s.client_id
        WHERE c.name = 'booking' AND s.status = 'COMPLETED'`,
    );
    assert.equal(seen.length, Number(rows[0].n));
    const executions = await http<{ items: { id: string; readCount: number }[] }>(
      service,
      'GET',
      '/api/executions?limit=3',
      apiKey,
    );
    assert.equal(executions.status, 200);
    assert.equal(executions.body.items.length, 3);
    assert.ok(executions.body.items.every((e) => e.readCount > 0));
    const targets = await http<{ name: string; primaryKey: string[] }[]>(service, 'GET', '/api/targets', apiKey);
    assert.deepEqual(
      targets.body.map((t) => [t.name, t.primaryKey]),
      [['public.reservations', ['id']]],
    );
    assert.equal((await http(service, 'GET', '/api/operations', null)).status, 401);
    assert.equal((await http(service, 'POST', '/api/clients', apiKey, { name: 'x', targets: ['*'] })).status, 403);
    const docs = await http<{ paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } }>(
      service,
      'GET',
      '/api/docs-json',
      null,
    );
    for (const path of [
      '/api/operations',
      '/api/operations/bulk',
      '/api/operations/{id}',
      '/api/operations/{id}/cancel',
      '/api/operations/{id}/retry',
      '/api/executions',
      '/api/executions/{id}',
      '/api/clients',
    ]) {
      assert.ok(docs.body.paths[path], `Swagger documents ${path}`);
    }
    for (const schema of ['OperationCreateDto', 'OperationResponseDto', 'ErrorResponseDto', 'ChunkResponseDto'])
      assert.ok(docs.body.components.schemas[schema], schema);
  });
});

describe('start-up refuses an invalid configuration (built service)', () => {
  it('exits 1 naming the variable, for a system schema among the targets', async () => {
    const env = serviceEnv({ BATCH_TARGET_SCHEMAS: 'public,pg_catalog' });
    await assert.rejects(
      startService(env),
      /service exited with 1:[\s\S]*BATCH_TARGET_SCHEMAS must not include the system schema "pg_catalog"/,
    );
  });
});
