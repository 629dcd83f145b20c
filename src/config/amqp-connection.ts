import amqp, { AmqpConnectionManager } from 'amqp-connection-manager';
import type { Socket } from 'node:net';

// Without NestJS: the outbox relay's thread loads this alone.

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
