import amqp from 'amqplib';
import { RMQ_URL } from './harness';

/**
 * The RPC queue spoken by hand (amqplib), for messages the client package would never send: a channel, and a reply
 * queue whose replies are kept by correlation id.
 */
export interface RawRpc<Reply> {
  connection: amqp.ChannelModel;
  channel: amqp.Channel;
  replyQueue: string;
  replies: Map<string, Reply>;
}

export async function openRawRpc<Reply = Record<string, unknown>>(): Promise<RawRpc<Reply>> {
  const connection = await amqp.connect(RMQ_URL);
  const channel = await connection.createChannel();
  const replyQueue = (await channel.assertQueue('', { exclusive: true })).queue;
  const replies = new Map<string, Reply>();
  await channel.consume(
    replyQueue,
    (message) =>
      message && replies.set(message.properties.correlationId, JSON.parse(message.content.toString()) as Reply),
    { noAck: true },
  );
  return { connection, channel, replyQueue, replies };
}

/** A message of the events exchange as the broker delivered it. */
export interface DeliveredEvent<Event> {
  routingKey: string;
  deliveryMode: unknown;
  event: Event;
}

export interface DeliveredEvents<Event> {
  delivered: DeliveredEvent<Event>[];
  close(): Promise<void>;
}

/**
 * Every message published to `exchange` under `routingKey` from now on, as the broker delivers it (to an exclusive
 * queue of its own), with the properties the client package does not show: `delivered` grows as they arrive.
 */
export async function deliveredEvents<Event>(exchange: string, routingKey: string): Promise<DeliveredEvents<Event>> {
  const connection = await amqp.connect(RMQ_URL);
  const channel = await connection.createChannel();
  const { queue } = await channel.assertQueue('', { exclusive: true });
  await channel.bindQueue(queue, exchange, routingKey);
  const delivered: DeliveredEvent<Event>[] = [];
  await channel.consume(
    queue,
    (message) =>
      message &&
      delivered.push({
        routingKey: message.fields.routingKey,
        deliveryMode: message.properties.deliveryMode,
        event: JSON.parse(message.content.toString()) as Event,
      }),
    { noAck: true },
  );
  return { delivered, close: () => connection.close() };
}
