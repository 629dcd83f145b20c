import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BatchServiceClient, IOperationsSettledEvent, SettledEventsConsumer } from '../../src/client';
import { brokerAddress } from '../../src/development-services';
import { TestDb } from '../support/harness';
import { BROKER_MISSING } from '../support/shared-services';
import {
  eventually,
  freePort,
  http,
  relayTo,
  RMQ_URL,
  serviceEnv,
  ServiceProcess,
  settledQueue,
  startService,
} from '../support/service-process';

type Health = {
  status: string;
  details: Record<string, { status: string; optional?: boolean; message?: string }>;
};

/** The tests' broker "appears" on `port` when the relay listens. */
function brokerAppearsOn(port: number): Promise<Server> {
  const broker = brokerAddress(RMQ_URL);
  return relayTo(port, broker.host, broker.port);
}

/**
 * A development start with no broker answering: REST, jobs and the dashboard serve at once, /health is ready and lists
 * the broker as down with how to get one; the notifications wait in the outbox, and RPC and notifications start when
 * a broker appears.
 */
describe('a development start without a broker (built service)', () => {
  let service: ServiceProcess;
  let db: TestDb;
  let brokerPort: number;
  let relay: Server | undefined;
  let apiKey: string;
  let operationId: string;

  before(async () => {
    brokerPort = await freePort();
    service = await startService(
      serviceEnv({ BATCH_SERVICE_RMQ_URL: `amqp://guest:guest@127.0.0.1:${brokerPort}`, LOG_LEVEL: 'info' }),
    );
    db = new TestDb(service.env.DB_NAME);
  });

  after(async () => {
    await db?.close();
    // while the relay still listens: what the service declared through it is deleted through it
    await service?.destroy();
    relay?.close();
  });

  it('says at start what is missing and how to get it', () => {
    assert.match(
      service.logs(),
      new RegExp(`No RabbitMQ answers at amqp://127\\.0\\.0\\.1:${brokerPort}: REST, .*docker compose up -d rabbitmq`),
    );
    assert.doesNotMatch(service.logs(), /guest:guest/);
  });

  it('is ready (REST serves), listing the broker as down with how to get one', async () => {
    const health = await http<Health>(service, 'GET', '/health', null);
    assert.equal(health.status, 200, JSON.stringify(health.body));
    assert.equal(health.body.status, 'ok');
    assert.equal(health.body.details.database.status, 'up');
    assert.equal(health.body.details.broker.status, 'down');
    assert.equal(health.body.details.broker.optional, true);
    assert.match(health.body.details.broker.message ?? '', /docker compose up -d rabbitmq/);
  });

  it('takes and applies operations over REST, keeping their notifications in the outbox', async () => {
    await db.query(`CREATE TABLE public.reservations (id int PRIMARY KEY, seat text NOT NULL)`);
    const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'booking',
      targets: ['reservations'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    apiKey = created.body.apiKey;
    const operation = await http<{ id: string }>(service, 'POST', '/api/operations', apiKey, {
      target: 'reservations',
      type: 'insert',
      values: { id: 1, seat: '1A' },
    });
    assert.equal(operation.status, 201, JSON.stringify(operation.body));
    operationId = operation.body.id;
    await eventually(
      async () => {
        const { body } = await http<{ status: string }>(service, 'GET', `/api/operations/${operationId}`, apiKey);
        return body.status === 'COMPLETED' ? true : undefined;
      },
      20_000,
      'the operation to complete',
    );
    assert.deepEqual(await db.query(`SELECT id, seat FROM public.reservations`), [{ id: 1, seat: '1A' }]);
    assert.equal(await db.count(`SELECT count(*) AS n FROM batch.outbox WHERE sent_at IS NULL`), 1);
  });

  it(
    'starts RPC and sends the kept notifications once a broker answers',
    { skip: BROKER_MISSING ?? false },
    async () => {
      const notified = new Map<string, IOperationsSettledEvent['operations'][number]>();
      const consumer = new SettledEventsConsumer({
        url: RMQ_URL,
        exchange: service.env.BATCH_SERVICE_EVENTS_EXCHANGE,
        client: 'booking',
        queue: settledQueue(service.env, 'booking'),
      });
      await consumer.start((event) => {
        for (const operation of event.operations) notified.set(operation.id, operation);
      });
      const rpc = new BatchServiceClient({
        url: service.env.BATCH_SERVICE_RMQ_URL,
        queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
        apiKey,
        timeoutMs: 30_000,
      });
      try {
        relay = await brokerAppearsOn(brokerPort);
        await eventually(async () => notified.get(operationId), 30_000, 'the kept notification');
        assert.equal(notified.get(operationId)!.status, 'COMPLETED');
        const created = await rpc.createOperation({
          target: 'reservations',
          type: 'insert',
          values: { id: 2, seat: '2B' },
        });
        await eventually(async () => notified.get(created.id), 30_000, 'the notification of an RPC operation');
        const health = await http<Health>(service, 'GET', '/health', null);
        assert.equal(health.status, 200);
        assert.equal(health.body.details.broker.status, 'up', JSON.stringify(health.body.details.broker));
        // said once RPC's warm-up is done, which may be after the broker is up and answering
        await eventually(
          async () => (/a broker answered: RPC serves the queue/.test(service.logs()) ? true : undefined),
          30_000,
          'the line that RPC serves',
        );
      } finally {
        await rpc.close().catch(() => undefined);
        await consumer.stop().catch(() => undefined);
      }
    },
  );
});
