import amqp from 'amqplib';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BatchServiceClient } from '../../src/client';
import { deadLetterQueue } from '../../src/controllers/rpc-server';
import { RMQ_URL, TestDb } from '../support/harness';
import { openRawRpc } from '../support/raw-rpc';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

type IntakeReply = { id?: string; err?: { status: string; code: string; message: string }; isDisposed?: boolean };

/**
 * Intake never wedges: whatever arrives on the RPC queue is settled — answered where it can be, dead-lettered when it
 * is no request, acknowledged — so a flood of garbage, more than the prefetch, never holds back a valid request.
 * An API-only instance (no worker) is enough: it declares the events exchange too.
 */
describe('intake under garbage (built service, API role only, raw AMQP)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  let replyQueue: string;
  let apiKey: string;
  let replies: Map<string, IntakeReply>;

  before(async () => {
    service = await startService(serviceEnv({ BATCH_ROLE: 'api' }));
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref text NOT NULL)`);
    apiKey = (
      await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
        name: 'raw',
        targets: ['events'],
      })
    ).body.apiKey;
    ({ connection, channel, replyQueue, replies } = await openRawRpc<IntakeReply>());
  });

  after(async () => {
    await connection?.close();
    await db?.close();
    await service?.destroy();
  });

  it('declares the events exchange without any worker, so callers may bind first', async () => {
    const probe = await connection.createChannel();
    await probe.checkExchange(service.env.BATCH_SERVICE_EVENTS_EXCHANGE); // closes the channel with 404 if missing
    const { queue } = await probe.assertQueue('', { exclusive: true });
    await probe.bindQueue(queue, service.env.BATCH_SERVICE_EVENTS_EXCHANGE, 'operations.settled.raw');
    await probe.close();
  });

  it('settles thousands of unreadable messages, answers those with a replyTo, and still answers a valid create at once', async () => {
    let nested = '0';
    for (let i = 0; i < 20_000; i++) nested = `[${nested}]`;
    const garbage: Buffer[] = [
      Buffer.from('{ not json'),
      Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), // not UTF-8
      Buffer.from('{}'),
      Buffer.from('null'),
      Buffer.from('[]'),
      Buffer.from('"createOperation"'),
      Buffer.from('{"data":{"target":"events"}}'),
      Buffer.from('{"pattern":42,"id":"x","data":{}}'),
      // an event (no id): refused for its value or its key; with a replyTo, a request without its id
      Buffer.from('{"pattern":"createOperation","data":{"target":"events","type":"insert","values":{"ref":null}}}'),
      Buffer.from('{"pattern":"getOperation","data":{"id":"1"}}'), // not taken as an event
      Buffer.from('{"pattern":"dropTables","id":"x","data":{}}'),
      Buffer.from('{"pattern":"createOperation","id":"\\ud800","data":{}}'),
      Buffer.from(`{"pattern":"createOperation","id":"deep","data":${nested}}`),
      Buffer.alloc(0),
    ];
    const prefetch = 200;
    const rounds = Math.ceil((prefetch * 10) / garbage.length);
    const answered: string[] = [];
    let sent = 0;
    for (let round = 0; round < rounds; round++) {
      for (const body of garbage) {
        const withReply = round % 2 === 0;
        const correlationId = randomUUID();
        channel.sendToQueue(service.env.BATCH_SERVICE_RMQ_QUEUE, body, {
          headers: { 'x-api-key': round % 3 === 0 ? apiKey : 'garbage-key' },
          ...(withReply ? { replyTo: replyQueue, correlationId } : {}),
        });
        if (withReply) answered.push(correlationId);
        sent++;
      }
    }
    const tooLarge = randomUUID();
    channel.sendToQueue(service.env.BATCH_SERVICE_RMQ_QUEUE, Buffer.alloc(6 * 1024 * 1024, 0x20), {
      replyTo: replyQueue,
      correlationId: tooLarge,
      headers: { 'x-api-key': apiKey },
    });

    const client = new BatchServiceClient({
      url: RMQ_URL,
      queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey,
      timeoutMs: 20_000,
    });
    const started = Date.now();
    const created = await client.createOperation({
      target: 'events',
      type: 'insert',
      values: { ref: 'after the flood' },
    });
    const tookMs = Date.now() - started;
    await client.close();
    assert.equal(created.status, 'PENDING');
    assert.ok(tookMs < 10_000, `answered in ${tookMs} ms behind ${sent} unreadable messages`);

    await eventually(
      async () => (answered.every((id) => replies.has(id)) && replies.has(tooLarge) ? true : undefined),
      20_000,
      'every reply',
    );
    for (const id of answered) {
      const reply = replies.get(id)!;
      assert.deepEqual(
        [reply.err?.status, reply.err?.code, reply.isDisposed],
        ['error', 'VALIDATION_FAILED', true],
        JSON.stringify(reply).slice(0, 200),
      );
    }
    assert.equal(replies.get(tooLarge)!.err?.code, 'PAYLOAD_TOO_LARGE');

    const dead = deadLetterQueue(service.env.BATCH_SERVICE_RMQ_QUEUE);
    await eventually(
      async () => ((await channel.checkQueue(dead)).messageCount === sent ? true : undefined),
      20_000,
      `${sent} dead-lettered messages`,
    );
    const kept = await channel.get(dead, { noAck: true });
    assert.ok(kept, 'a dead-lettered message');
    assert.equal(kept.properties.headers?.['x-api-key'], undefined, 'dead-lettered without its API key');
    assert.equal(kept.properties.headers?.['x-refused-code'], 'VALIDATION_FAILED');
    assert.equal(
      await db.count(`SELECT count(*) AS n FROM batch.operations`),
      1,
      'nothing but the valid create was stored',
    );

    // Whatever the service had taken but not acknowledged goes back to the queue when it stops: there is none.
    assert.equal(await service.stop(), 0);
    assert.equal(
      (await channel.checkQueue(service.env.BATCH_SERVICE_RMQ_QUEUE)).messageCount,
      0,
      'nothing ready or unacknowledged',
    );
  });
});
