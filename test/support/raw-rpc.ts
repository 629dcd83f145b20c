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
