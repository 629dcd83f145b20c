import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { IOperationsSettledEvent, SETTLED_ROUTING_KEY_PREFIX } from '../interfaces/operation.interfaces';
import { connectAmqp } from '../config/amqp';

export interface SettledEventsOptions {
  url: string;
  /** The service's events exchange (BATCH_SERVICE_EVENTS_EXCHANGE); default `batch_service.events`. */
  exchange?: string;
  /** The client name whose notifications to receive (the routing key's last word). */
  client: string;
  /** A durable queue name, so notifications wait while the consumer is down; default a server-named, exclusive queue. */
  queue?: string;
  prefetch?: number;
}

/**
 * Consumes `operations.settled` notifications for one client. The handler's promise decides the ack: resolved,
 * the message is acknowledged; rejected, it is requeued. Delivery is at least once: dedupe by operation id.
 */
/** Acknowledges if the channel is still open; on a closed one the broker redelivers the message by itself. */
function settle(acknowledge: () => void): void {
  try {
    acknowledge();
  } catch {
    // channel closed (broker restart): the message comes again, and the handler dedupes by operation id
  }
}

export class SettledEventsConsumer {
  private connection: AmqpConnectionManager | null = null;
  private channel: ChannelWrapper | null = null;

  constructor(private readonly options: SettledEventsOptions) {}

  async start(handler: (event: IOperationsSettledEvent) => Promise<void> | void): Promise<void> {
    const { url, client, queue } = this.options;
    const exchange = this.options.exchange ?? 'batch_service.events';
    this.connection = connectAmqp([url]);
    this.channel = this.connection.createChannel({
      setup: async (channel: ConfirmChannel) => {
        await channel.assertExchange(exchange, 'topic', { durable: true });
        const { queue: name } = await channel.assertQueue(
          queue ?? '',
          queue ? { durable: true } : { exclusive: true, autoDelete: true },
        );
        await channel.bindQueue(name, exchange, SETTLED_ROUTING_KEY_PREFIX + client);
        await channel.prefetch(this.options.prefetch ?? 100);
        await channel.consume(name, (message: ConsumeMessage | null) => {
          if (!message) return;
          Promise.resolve()
            .then(() => handler(JSON.parse(message.content.toString()) as IOperationsSettledEvent))
            .then(
              () => settle(() => channel.ack(message)),
              () => settle(() => channel.nack(message, false, true)),
            );
        });
      },
    });
    await this.channel.waitForConnect();
  }

  async stop(): Promise<void> {
    await this.channel?.close();
    await this.connection?.close();
  }
}
