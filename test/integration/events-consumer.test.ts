import amqplib from 'amqplib';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BatchServiceClient, SettledEventsConsumer } from '../../src/client';
import { RMQ_URL } from '../support/harness';
import { uniqueName } from '../support/test-database';

/** The client package's consumer and RPC client against a broker that refuses their setup (RabbitMQ, no service). */
describe('the client package when the broker refuses its setup (RabbitMQ)', () => {
  const exchange = uniqueName('taken_exchange');
  const queue = uniqueName('taken_queue');
  let connection: amqplib.ChannelModel;

  before(async () => {
    connection = await amqplib.connect(RMQ_URL);
    const channel = await connection.createChannel();
    await channel.assertExchange(exchange, 'direct', { durable: false }); // the consumer declares a topic exchange
    await channel.assertQueue(queue, { durable: false }); // the RPC client declares its queue durable
    await channel.close();
  });

  after(async () => {
    const channel = await connection.createChannel();
    await channel.deleteExchange(exchange);
    await channel.deleteQueue(queue);
    await connection.close();
  });

  it(
    'rejects start() with the broker refusal when its setup fails, neither hanging nor leaving a rejection',
    { timeout: 10_000 },
    async () => {
      const unhandled: unknown[] = [];
      const hear = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', hear);
      try {
        const consumer = new SettledEventsConsumer({ url: RMQ_URL, exchange, client: 'refused' });
        await assert.rejects(
          consumer.start(() => undefined),
          /PRECONDITION[-_]FAILED/,
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', hear);
      }
    },
  );

  it(
    'answers TIMEOUT from the RPC client whose channel setup fails, leaving no rejection',
    { timeout: 10_000 },
    async () => {
      const unhandled: unknown[] = [];
      const hear = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', hear);
      const client = new BatchServiceClient({ url: RMQ_URL, queue, apiKey: 'k', timeoutMs: 1000 });
      try {
        await assert.rejects(client.getOperation('1'), { code: 'TIMEOUT' });
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', hear);
        await client.close().catch(() => undefined);
      }
    },
  );
});
