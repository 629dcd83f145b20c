import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectAmqp } from '../../src/config/amqp-connection';
import { RMQ_URL } from '../support/harness';
import { uniqueName } from '../support/test-database';
import { withoutBroker } from '../support/shared-services';

/** Frames written in one turn leave in one socket write, on every connection the manager opens. */
describe('AMQP frame writes (RabbitMQ)', () => {
  if (withoutBroker()) return;
  const queue = uniqueName('frames');
  let manager: AmqpConnectionManager;
  let channel: ChannelWrapper;

  before(async () => {
    manager = connectAmqp([RMQ_URL]);
    channel = manager.createChannel({
      confirm: true,
      setup: (c: ConfirmChannel) => c.assertQueue(queue, { autoDelete: true }),
    });
    await channel.waitForConnect();
  });

  after(async () => {
    await channel?.deleteQueue(queue);
    await channel?.close();
    await manager?.close();
  });

  /** Publishes `n` messages in one turn; returns how many writes reached the socket's handle meanwhile. */
  async function writesToPublish(n: number): Promise<number> {
    const socket = currentSocket(manager);
    let writes = 0;
    const writeOne = socket._write;
    const writeMany = socket._writev!;
    socket._write = function (...args) {
      writes += 1;
      return writeOne.apply(this, args);
    };
    socket._writev = function (...args) {
      writes += 1;
      return writeMany.apply(this, args);
    };
    try {
      await Promise.all(Array.from({ length: n }, (_, i) => channel.sendToQueue(queue, Buffer.from(`message ${i}`))));
    } finally {
      socket._write = writeOne;
      socket._writev = writeMany;
    }
    return writes;
  }

  it('sends a turn of 100 publishes in a few writes, not one per frame, and every message arrives', async () => {
    const writes = await writesToPublish(100);
    assert.ok(writes <= 5, `${writes} socket writes for 100 publishes`);
    const { messageCount } = await channel.checkQueue(queue);
    assert.equal(messageCount, 100);
  });

  it('coalesces on the connection opened after the broker connection was lost', async () => {
    const lost = currentSocket(manager);
    const reconnected = once(manager, 'connect');
    lost.destroy(new Error('connection cut by the test'));
    await reconnected;
    await channel.waitForConnect();
    assert.notEqual(currentSocket(manager), lost);
    const writes = await writesToPublish(100);
    assert.ok(writes <= 5, `${writes} socket writes for 100 publishes after reconnecting`);
  });
});

function currentSocket(manager: AmqpConnectionManager): Socket {
  return (manager.connection as unknown as { connection: { stream: Socket } }).connection.stream;
}
