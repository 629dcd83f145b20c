import type { LoggerService } from '@nestjs/common';
import { ClientRMQ, RmqOptions } from '@nestjs/microservices';
import amqp, { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { Socket } from 'node:net';

/**
 * Socket options for every AMQP connection, the service's and its clients': reconnect within a second after the
 * broker returns, detect dead peers through heartbeats, and send small RPC frames at once (without TCP_NODELAY,
 * Nagle's algorithm and delayed acknowledgements hold every request and reply back by tens of milliseconds).
 */
export const AMQP_SOCKET_OPTIONS = {
  reconnectTimeInSeconds: 1,
  heartbeatIntervalInSeconds: 5,
  connectionOptions: { noDelay: true },
};

/** A broker connection (reconnecting) with AMQP_SOCKET_OPTIONS and coalesced frame writes. */
export function connectAmqp(urls: string[]): AmqpConnectionManager {
  return coalesceFrameWrites(amqp.connect(urls, AMQP_SOCKET_OPTIONS));
}

/**
 * amqplib writes every frame to its socket with a write of its own, so answering a request costs two system calls
 * (the reply and the acknowledgement) and, with TCP_NODELAY, two packets that the broker handles one by one.
 * Corking the socket at a turn's first write and uncorking it on the next tick sends all the frames of that turn
 * (a group commit's replies and acknowledgements) in one writev; nothing waits for a timer. Applied to every
 * connection the manager opens, reconnections included.
 */
export function coalesceFrameWrites(manager: AmqpConnectionManager): AmqpConnectionManager {
  manager.on('connect', ({ connection }) =>
    corkEachTurn((connection as unknown as { connection: { stream: Socket } }).connection.stream),
  );
  return manager;
}

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

function corkEachTurn(socket: Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Socket['write'];
}
