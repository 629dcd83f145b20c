import amqp from 'amqplib';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { deadLetterQueue } from '../../src/controllers/rpc-server';
import { TestDb } from '../support/harness';
import { openRawRpc } from '../support/raw-rpc';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/**
 * The RPC wire format spoken by hand with amqplib, as any caller may: a redelivered request (the same request
 * id) stores nothing new, and rejected or unreadable input is answered and acknowledged, never requeued.
 */
describe('RPC delivery (built service, raw AMQP)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  let replyQueue: string;
  let replies: Map<string, Record<string, unknown>>;
  let apiKey: string;

  before(async () => {
    service = await startService(serviceEnv({ BATCH_RMQ_PREFETCH: '5' }));
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref text NOT NULL)`);
    apiKey = (
      await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
        name: 'raw',
        targets: ['events'],
      })
    ).body.apiKey;
    ({ connection, channel, replyQueue, replies } = await openRawRpc());
  });

  after(async () => {
    await connection?.close();
    await db?.close();
    await service?.destroy();
  });

  function send(body: string, headers: Record<string, string> = { 'x-api-key': apiKey }): string {
    const correlationId = randomUUID();
    channel.sendToQueue(service.env.BATCH_SERVICE_RMQ_QUEUE, Buffer.from(body), {
      replyTo: replyQueue,
      correlationId,
      headers,
      persistent: true,
    });
    return correlationId;
  }

  const reply = (correlationId: string) =>
    eventually(async () => replies.get(correlationId), 10_000, 'the reply') as Promise<Record<string, unknown>>;

  it('answers a redelivered request (same request id) with the operation it stored the first time', async () => {
    const request = JSON.stringify({
      pattern: 'createOperation',
      id: 'request-1',
      data: { target: 'events', type: 'insert', values: { ref: 'once' } },
    });
    const first = (await reply(send(request))).response as { id: string; duplicate: boolean };
    const again = (await reply(send(request))).response as { id: string; duplicate: boolean };
    assert.equal(again.id, first.id);
    assert.deepEqual([first.duplicate, again.duplicate], [false, true]);
    const bulk = JSON.stringify({
      pattern: 'createOperations',
      id: 'request-2',
      data: {
        operations: [
          { target: 'events', type: 'insert', values: { ref: 'a' } },
          { target: 'events', type: 'insert', values: { ref: 'b' } },
        ],
      },
    });
    const one = (await reply(send(bulk))).response as { operations: { id: string }[] };
    const two = (await reply(send(bulk))).response as { operations: { id: string; duplicate: boolean }[] };
    assert.deepEqual(
      two.operations.map((o) => o.id),
      one.operations.map((o) => o.id),
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM batch.operations`), 3);
  });

  it('answers and acknowledges rejected, unauthenticated, unreadable and unknown requests, so none stays in the queue', async () => {
    const rejected = await reply(
      send(
        JSON.stringify({
          pattern: 'createOperation',
          id: 'r-bad',
          data: { target: 'events', type: 'insert', values: { nope: 1 } },
        }),
      ),
    );
    assert.equal((rejected.err as { code: string }).code, 'UNKNOWN_COLUMN');
    assert.equal(rejected.isDisposed, true);
    const anonymous = await reply(
      send(JSON.stringify({ pattern: 'getOperation', id: 'r-anon', data: { id: '1' } }), {}),
    );
    assert.equal((anonymous.err as { code: string }).code, 'UNAUTHENTICATED');
    const unknown = await reply(send(JSON.stringify({ pattern: 'dropTables', id: 'r-unknown', data: {} })));
    assert.ok(unknown.err);
    send('{ not json');
    // More bad requests than the prefetch allows in flight: had any stayed unacknowledged, the rest would stall.
    const many = Array.from({ length: 20 }, (_, i) =>
      send(JSON.stringify({ pattern: 'getOperation', id: `r-${i}`, data: { id: 'x' } })),
    );
    for (const id of many) assert.equal(((await reply(id)).err as { code: string }).code, 'VALIDATION_FAILED');
    await eventually(
      async () => {
        const { messageCount } = await channel.checkQueue(service.env.BATCH_SERVICE_RMQ_QUEUE);
        return messageCount === 0 ? true : undefined;
      },
      10_000,
      'the queue to be empty',
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM batch.operations`), 3, 'nothing stored');
  });
});

/**
 * The warm-up (BATCH_WARMUP_REQUESTS): before it says it is ready, a process answers requests it sent itself, refused
 * at the API key check, on queues of its own; none is counted, dead-lettered or stored.
 */
describe('RPC warm-up before ready (built service)', () => {
  if (withoutBroker()) return;
  it('answers its own refused requests before it listens, and counts, dead-letters and stores none of them', async () => {
    const service = await startService(serviceEnv({ LOG_LEVEL: 'info', BATCH_WARMUP_REQUESTS: '300' }));
    const db = new TestDb(service.env.DB_NAME);
    const { connection, channel } = await openRawRpc();
    try {
      const logs = service.logs();
      const warmed = logs.indexOf('warmed up: 300 of 300 requests answered');
      assert.ok(warmed >= 0 && warmed < logs.indexOf('listening on port'), logs);
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      assert.doesNotMatch(metrics, /batch_rpc_request_duration_seconds_count\{/);
      assert.doesNotMatch(metrics, /batch_rpc_dead_lettered_total\{/);
      const deadLetters = await channel.checkQueue(deadLetterQueue(service.env.BATCH_SERVICE_RMQ_QUEUE));
      assert.equal(deadLetters.messageCount, 0);
      assert.equal(await db.count(`SELECT count(*) AS n FROM batch.operations`), 0);
    } finally {
      await connection.close();
      await db.close();
      await service.destroy();
    }
  });
});
