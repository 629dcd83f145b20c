import { Logger } from '@nestjs/common';
import type { AmqpConnectionManager } from 'amqp-connection-manager';
import { IncomingRequest, RmqContext, RmqOptions, ServerRMQ } from '@nestjs/microservices';
import { IncomingRequestDeserializer } from '@nestjs/microservices/deserializers';
import { coalesceFrameWrites } from '../config/amqp';
import { withLogFields } from '../services/log-context';
import { Metrics } from '../services/metrics.service';

const REQUEST_IDS = new WeakMap<object, string | undefined>();
const OUTCOMES = new WeakMap<object, string>();

/**
 * The RPC request id (the NestJS wire format's `id`), used as the implicit idempotency key of a create and in the
 * log context; noted as NestJS deserializes the message.
 */
export function rpcRequestId(context: RmqContext): string | undefined {
  return REQUEST_IDS.get(context.getMessage().properties);
}

/** Records that an RPC call failed with the contract's error `code` (BatchErrorFilter); calls without one are OK. */
export function setRpcOutcome(context: RmqContext, code: string): void {
  OUTCOMES.set(context.getMessage(), code);
}

/**
 * The RPC transport: NestJS's RMQ server, with every call framed by its processing hook rather than by an
 * interceptor (each interceptor costs NestJS two async-context bindings and rxjs layers per call, about a tenth
 * of a create's CPU). Admission (size, API key, rate limit) is AuthGuard's. Each call:
 * - runs with its request id, AMQP correlation id and pattern in the log context, so every line logged while
 *   serving it carries them, and is timed with its outcome: OK or the contract's error code (one line at debug);
 * - is acknowledged when its handler has finished, so a request is acknowledged once its operation is durably
 *   stored (or rejected), never before.
 */
export class RpcServer extends ServerRMQ {
  private readonly log = new Logger('RpcCall');

  constructor(
    options: NonNullable<RmqOptions['options']>,
    private readonly metrics: Metrics,
  ) {
    super({ ...options, deserializer: new RequestIdDeserializer() });
    this.setOnProcessingStartHook((_transport, context, done) => this.serve(context as RmqContext, done));
  }

  private serve(rmq: RmqContext, done: () => Promise<unknown>): Promise<void> {
    const pattern = rmq.getPattern();
    const correlationId: unknown = rmq.getMessage().properties.correlationId;
    const fields = { requestId: rpcRequestId(rmq), correlationId: typeof correlationId === 'string' ? correlationId : undefined, pattern };
    return withLogFields(fields, async () => {
      const end = this.metrics.rpcDuration.startTimer({ pattern });
      try {
        await done();
      } finally {
        acknowledge(rmq);
        const outcome = OUTCOMES.get(rmq.getMessage()) ?? 'OK';
        const durationMs = Math.round(end({ outcome }) * 1000);
        this.log.debug({ outcome, durationMs }, `${pattern} ${outcome} in ${durationMs} ms`);
      }
    });
  }

  /** The broker connection, its frame writes coalesced: a group commit's replies and acknowledgements leave in one write. */
  createClient<T>(): T {
    return coalesceFrameWrites(super.createClient<AmqpConnectionManager>()) as T;
  }

  /** Routes string patterns as they are: NestJS tries JSON.parse first, which throws for every one of them. */
  protected getRouteFromPattern(pattern: string): string {
    return pattern.startsWith('{') ? super.getRouteFromPattern(pattern) : this.normalizePattern(pattern);
  }
}

/**
 * Acknowledges an RPC request to the broker. When the channel it came on has closed meanwhile (the broker
 * restarted), the broker requeues the request by itself, and its redelivery is answered from what was stored.
 */
function acknowledge(rmq: RmqContext): void {
  try {
    rmq.getChannelRef().ack(rmq.getMessage());
  } catch {
    // channel closed: nothing to acknowledge on any more
  }
}

/** NestJS's own deserializer, noting each request's id by its message's properties (what the server passes it). */
class RequestIdDeserializer extends IncomingRequestDeserializer {
  deserialize(value: unknown, properties?: Record<string, unknown>): IncomingRequest {
    const request = super.deserialize(value, properties) as IncomingRequest;
    const id: unknown = request.id;
    if (properties) REQUEST_IDS.set(properties, typeof id === 'string' && id.length > 0 && id.length <= 200 ? id : undefined);
    return request;
  }
}
