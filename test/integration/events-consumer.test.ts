import amqplib from 'amqplib';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BatchServiceClient, SettledEventsConsumer } from '../../src/client';
import { RMQ_URL } from '../support/harness';
import { uniqueName } from '../support/test-database';
import { withoutBroker } from '../support/shared-services';

/** Open TCP sockets of this process. */
const openSockets = () => process.getActiveResourcesInfo().filter((resource) => resource === 'TCPSocketWrap').length;

/** Waits (bounded) until this process has no more sockets open than `count`: a socket left open keeps a caller alive. */
async function socketsBackTo(count: number): Promise<void> {
  for (let waited = 0; openSockets() > count && waited < 2000; waited += 20)
    await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(openSockets(), count, 'a broker connection was left open');
}

/**
 * The client package's consumer and RPC client against a broker that refuses their setup (RabbitMQ, no service).
 * Each case runs several times: whether the broker has closed the refused channel when the caller closes differs
 * from run to run, and either way nothing may be left open.
 */
describe('the client package when the broker refuses its setup (RabbitMQ)', () => {
  if (withoutBroker()) return;
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
    'rejects start() with the broker refusal when its setup fails, neither hanging nor leaving a rejection or a socket',
    { timeout: 20_000 },
    async () => {
      const unhandled: unknown[] = [];
      const hear = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', hear);
      const sockets = openSockets();
      try {
        for (let run = 0; run < 10; run++) {
          const consumer = new SettledEventsConsumer({ url: RMQ_URL, exchange, client: 'refused' });
          await assert.rejects(
            consumer.start(() => undefined),
            /PRECONDITION[-_]FAILED/,
          );
          await socketsBackTo(sockets);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', hear);
      }
    },
  );

  it(
    'answers TIMEOUT from the RPC client whose channel setup fails, leaving no rejection, and closes its connection',
    { timeout: 30_000 },
    async () => {
      const unhandled: unknown[] = [];
      const hear = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', hear);
      const sockets = openSockets();
      try {
        for (let run = 0; run < 10; run++) {
          const client = new BatchServiceClient({ url: RMQ_URL, queue, apiKey: 'k', timeoutMs: 300 });
          await assert.rejects(client.getOperation('1'), { code: 'TIMEOUT' });
          await client.close();
          await socketsBackTo(sockets);
        }
        assert.deepEqual(unhandled, []);
      } finally {
        process.off('unhandledRejection', hear);
      }
    },
  );
});
