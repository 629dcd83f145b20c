import { ClientProxy, ClientProxyFactory, RmqRecordBuilder, Transport } from '@nestjs/microservices';
import amqp from 'amqplib';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { lastValueFrom } from 'rxjs';
import { deadLetterQueue } from '../../src/controllers/rpc-server';
import { Caller, createCaller, RMQ_URL, settleAll, TestDb } from '../support/harness';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/**
 * Events: callers that `emit` createOperation(s) with NestJS's own ClientProxy (not this project's client), as the
 * first callers of the service did. Stored exactly as requests are, acknowledged after the commit, answered to
 * nobody; a refused event lands in the dead-letter queue with its reason.
 */
describe('events: createOperation(s) emitted with the stock ClientProxy (built service)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let caller: Caller;
  let proxy: ClientProxy;
  let broker: amqp.ChannelModel;
  let channel: amqp.Channel;
  let deadLetters: string;

  const emit = (pattern: string, data: unknown, apiKey = caller.apiKey) =>
    lastValueFrom(
      proxy.emit(pattern, new RmqRecordBuilder(data).setOptions({ headers: { 'x-api-key': apiKey } }).build()),
      { defaultValue: undefined },
    );

  /** The next message of the dead-letter queue, taken off it. */
  const nextDeadLetter = () =>
    eventually(async () => (await channel.get(deadLetters, { noAck: true })) || undefined, 15_000, 'a dead letter');

  const rowsWith = (ref: string) => db.count(`SELECT count(*) AS n FROM public.emitted WHERE ref = $1`, [ref]);

  before(async () => {
    service = await startService(serviceEnv());
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.emitted (id bigserial PRIMARY KEY, ref text NOT NULL, qty int)`);
    caller = await createCaller(service, 'emitter', ['emitted']);
    proxy = ClientProxyFactory.create({
      transport: Transport.RMQ,
      options: { urls: [RMQ_URL], queue: service.env.BATCH_SERVICE_RMQ_QUEUE, queueOptions: { durable: true } },
    });
    await proxy.connect();
    broker = await amqp.connect(RMQ_URL);
    channel = await broker.createChannel();
    deadLetters = deadLetterQueue(service.env.BATCH_SERVICE_RMQ_QUEUE);
  });

  after(async () => {
    await proxy?.close();
    await broker?.close();
    await caller?.close();
    await db?.close();
    await service?.destroy();
  });

  it('stores, applies and notifies an emitted createOperation and createOperations', async () => {
    await emit('createOperation', {
      target: 'emitted',
      type: 'insert',
      values: { ref: 'one', qty: 1 },
      idempotencyKey: 'emit-1',
      label: 'EMIT',
    });
    await emit('createOperations', {
      operations: [
        { target: 'emitted', type: 'insert', values: { ref: 'many', qty: 2 } },
        { target: 'public.emitted', type: 'insert', values: { ref: 'many', qty: 3 }, idempotencyKey: 'emit-2' },
      ],
    });
    await eventually(
      async () => ((await db.count(`SELECT count(*) AS n FROM batch.operations`)) === 3 ? true : undefined),
      15_000,
      'three operations stored',
    );
    const settled = await settleAll(db, caller);
    assert.deepEqual(
      settled.map((o) => o.status),
      ['COMPLETED', 'COMPLETED', 'COMPLETED'],
    );
    assert.equal(await rowsWith('one'), 1);
    assert.equal(await rowsWith('many'), 2);
    const one = [...caller.notified.values()].find((o) => o.idempotencyKey === 'emit-1');
    assert.deepEqual([one?.status, one?.label, one?.target], ['COMPLETED', 'EMIT', 'public.emitted']);
    assert.equal((await channel.checkQueue(deadLetters)).messageCount, 0, 'nothing refused');
  });

  it('dead-letters a refused event with its code and reason, never its API key, and counts it', async () => {
    const refused: [string, unknown, string, string, RegExp][] = [
      [
        'createOperation',
        { target: 'emitted', type: 'insert', values: { ref: 'x' } },
        'wrong-key',
        'UNAUTHENTICATED',
        /API key/,
      ],
      [
        'createOperation',
        { target: 'emitted', type: 'insert', values: { ref: null } },
        caller.apiKey,
        'VALIDATION_FAILED',
        /ref/,
      ],
      [
        'createOperation',
        { target: 'nowhere', type: 'insert', values: { ref: 'x' } },
        caller.apiKey,
        'UNKNOWN_TARGET',
        /nowhere/,
      ],
      [
        'createOperations',
        {
          operations: [
            { target: 'emitted', type: 'insert', values: { ref: 'ok' } },
            { target: 'emitted', type: 'insert', values: { nope: 1 } },
          ],
        },
        caller.apiKey,
        'UNKNOWN_COLUMN',
        /nope/,
      ],
      ['dropTables', {}, caller.apiKey, 'VALIDATION_FAILED', /Unknown pattern/],
      ['getOperation', { id: '1' }, caller.apiKey, 'VALIDATION_FAILED', /only as a request/],
    ];
    for (const [pattern, data, apiKey, code, reason] of refused) {
      await emit(pattern, data, apiKey);
      const dead = await nextDeadLetter();
      const headers = dead.properties.headers ?? {};
      assert.equal(headers['x-refused-code'], code, `${pattern}: ${String(headers['x-refused-reason'])}`);
      assert.match(String(headers['x-refused-reason']), reason);
      assert.equal(headers['x-api-key'], undefined, 'the API key is not kept');
      assert.deepEqual((JSON.parse(dead.content.toString()) as { data: unknown }).data, data, 'the body as sent');
    }
    assert.equal(await rowsWith('ok'), 0, 'a refused createOperations stores none of its operations');
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    for (const [pattern, code, count] of [
      ['createOperation', 'UNAUTHENTICATED', 1],
      ['createOperation', 'VALIDATION_FAILED', 1],
      ['createOperations', 'UNKNOWN_COLUMN', 1],
      ['unreadable', 'VALIDATION_FAILED', 2],
    ] as const) {
      assert.match(
        metrics,
        new RegExp(`batch_rpc_dead_lettered_total\\{pattern="${pattern}",code="${code}"\\} ${count}\\b`),
      );
    }
  });

  it('holds an event to the same rate limit as a request', async () => {
    const limited = await http<{ id: string; apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'limited',
      targets: ['emitted'],
      rateLimitPerSecond: 1,
    });
    for (const ref of ['limited-1', 'limited-2'])
      await emit('createOperation', { target: 'emitted', type: 'insert', values: { ref } }, limited.body.apiKey);
    const dead = await nextDeadLetter();
    assert.equal(dead.properties.headers?.['x-refused-code'], 'RATE_LIMITED');
    assert.match(String(dead.properties.headers?.['x-refused-details']), /retryAfterMs/);
    await eventually(async () => ((await rowsWith('limited-1')) === 1 ? true : undefined), 15_000, 'the first stored');
    assert.equal(await rowsWith('limited-2'), 0);
  });

  it('stores a redelivered event once with an idempotency key, and again without one (at least once)', async () => {
    // A redelivery is the same bytes again: publish the event's message twice, as the broker would after a crash.
    const publishTwice = (data: unknown) => {
      const body = Buffer.from(JSON.stringify({ pattern: 'createOperation', data }));
      for (let i = 0; i < 2; i++)
        channel.sendToQueue(service.env.BATCH_SERVICE_RMQ_QUEUE, body, { headers: { 'x-api-key': caller.apiKey } });
    };
    publishTwice({ target: 'emitted', type: 'insert', values: { ref: 'keyed' }, idempotencyKey: 'emit-again' });
    publishTwice({ target: 'emitted', type: 'insert', values: { ref: 'unkeyed' } });
    await eventually(async () => ((await rowsWith('unkeyed')) === 2 ? true : undefined), 15_000, 'both unkeyed');
    await settleAll(db, caller);
    assert.equal(await rowsWith('keyed'), 1, 'one operation for the idempotency key');
    assert.equal(await db.count(`SELECT count(*) AS n FROM batch.operations WHERE idempotency_key = 'emit-again'`), 1);
    assert.equal((await channel.checkQueue(deadLetters)).messageCount, 0, 'a duplicate is no refusal');
  });

  it("emits through the project's client too, resolving once the broker has the event", async () => {
    await caller.rpc.emitOperation({ target: 'emitted', type: 'insert', values: { ref: 'client' } });
    await caller.rpc.emitOperations([{ target: 'emitted', type: 'insert', values: { ref: 'client' } }]);
    await eventually(async () => ((await rowsWith('client')) === 2 ? true : undefined), 15_000, 'both stored');
  });

  it('acknowledges every event: nothing is left on the queue', async () => {
    await eventually(
      async () =>
        (await channel.checkQueue(service.env.BATCH_SERVICE_RMQ_QUEUE)).messageCount === 0 ? true : undefined,
      10_000,
      'an empty RPC queue',
    );
  });
});
