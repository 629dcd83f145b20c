import type { LoggerService } from '@nestjs/common';
import { ClientRMQ, RmqOptions } from '@nestjs/microservices';
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import { coalesceFrameWrites } from './amqp-connection';

/** Nest's Logger interface with nothing written: what a client of the service logs unless its caller gives a logger. */
export const SILENT_LOGGER: LoggerService = { log() {}, error() {}, warn() {} };

/**
 * NestJS's RMQ client with coalesced frame writes: the service's clients, and the benchmark's echo client. It logs
 * through `logger` (NestJS's client writes its own lines to stdout, a caller's stdout).
 */
export class RmqClient extends ClientRMQ {
  constructor(options: NonNullable<RmqOptions['options']>, logger: LoggerService) {
    super(options);
    (this as unknown as { logger: LoggerService }).logger = logger;
  }

  createClient(): AmqpConnectionManager {
    return coalesceFrameWrites(super.createClient());
  }

  /**
   * Closes the connection even when closing the channel fails: a channel the broker has just closed (its setup
   * refused) rejects its close, NestJS's close then stops before the connection, and its socket keeps the caller's
   * process alive.
   */
  async close(): Promise<void> {
    await this.channel?.close().catch(() => undefined);
    this.channel = null;
    await super.close();
  }

  /**
   * The channel, its setup failures logged: a setup that fails when the connection comes back (the channel ended
   * midway, say) is an 'error' event of the channel that, unheard, ends the caller's process as an unhandled rejection;
   * the next reconnect sets it up again.
   */
  createChannel(): Promise<void> {
    const created = super.createChannel();
    (this as unknown as { channel: ChannelWrapper }).channel.on('error', (error: Error) =>
      this.logger.error(`broker channel setup failed: ${error.message}`),
    );
    return created;
  }
}
