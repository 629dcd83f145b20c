import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel, ConsumeMessage } from 'amqplib';
import { IOperationsSettledEvent, SETTLED_ROUTING_KEY_PREFIX } from '../interfaces/operation.interfaces';
import { IJobFinishedEvent, JOB_FINISHED_ROUTING_KEY_PREFIX } from '../interfaces/job.interfaces';
import { connectAmqp } from '../config/amqp-connection';

export interface SettledEventsOptions {
  url: string;
  /** The service's events exchange (BATCH_SERVICE_EVENTS_EXCHANGE); default `batch_service.events`. */
  exchange?: string;
  /** The client name whose notifications to receive (the routing key's last word). */
  client: string;
  /** A durable queue name, so notifications wait while the consumer is down; default a server-named, exclusive queue. */
  queue?: string;
  prefetch?: number;
  /**
   * Hears a failure to set the consumer up again after the broker connection came back (the next reconnect tries
   * again); by default nothing. A failure of the first setup rejects `start()` instead.
   */
  onError?: (error: Error) => void;
}

/** Acknowledges if the channel is still open; on a closed one the broker redelivers the message by itself. */
function settle(acknowledge: () => void): void {
  try {
    acknowledge();
  } catch {
    // channel closed (broker restart): the message comes again, and the handler dedupes by operation id
  }
}

/**
 * Consumes one kind of the service's notifications for one client. The handler's promise decides the ack: resolved,
 * the message is acknowledged; rejected, it is requeued. Delivery is at least once.
 */
abstract class EventsConsumer<Event> {
  private connection: AmqpConnectionManager | null = null;
  private channel: ChannelWrapper | null = null;

  constructor(
    private readonly options: SettledEventsOptions,
    private readonly routingKeyPrefix: string,
  ) {}

  async start(handler: (event: Event) => Promise<void> | void): Promise<void> {
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
        await channel.bindQueue(name, exchange, this.routingKeyPrefix + client);
        await channel.prefetch(this.options.prefetch ?? 100);
        await channel.consume(name, (message: ConsumeMessage | null) => {
          if (!message) return;
          Promise.resolve()
            .then(() => handler(JSON.parse(message.content.toString()) as Event))
            .then(
              () => settle(() => channel.ack(message)),
              () => settle(() => channel.nack(message, false, true)),
            );
        });
      },
    });
    // a setup that fails is an 'error' event of the channel: unheard, it would end the caller's process as an
    // unhandled rejection (and the channel never connects)
    let started = false;
    const channel = this.channel;
    await new Promise<void>((resolve, reject) => {
      channel.on('error', (error: Error) => (started ? this.options.onError?.(error) : reject(error)));
      channel.waitForConnect().then(resolve, reject);
    }).catch(async (error: unknown) => {
      await this.stop();
      throw error;
    });
    started = true;
  }

  async stop(): Promise<void> {
    // a channel the broker has just closed (its setup refused) rejects its close: the connection closes all the same
    await this.channel?.close().catch(() => undefined);
    await this.connection?.close();
  }
}

/** `operations.settled` notifications of one client: dedupe by operation id. */
export class SettledEventsConsumer extends EventsConsumer<IOperationsSettledEvent> {
  constructor(options: SettledEventsOptions) {
    super(options, SETTLED_ROUTING_KEY_PREFIX);
  }
}

/** `job.finished` notifications of one client's job executions: dedupe by executionId. */
export class JobFinishedConsumer extends EventsConsumer<IJobFinishedEvent> {
  constructor(options: SettledEventsOptions) {
    super(options, JOB_FINISHED_ROUTING_KEY_PREFIX);
  }
}
