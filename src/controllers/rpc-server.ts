import { Logger } from '@nestjs/common';
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { Channel, ConsumeMessage } from 'amqplib';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { lastValueFrom } from 'rxjs';
import { RmqContext, RmqOptions, ServerRMQ } from '@nestjs/microservices';
import { coalesceFrameWrites } from '../config/amqp-connection';
import { BATCH_EVENT_PATTERNS, BATCH_PATTERNS } from '../interfaces/operation.interfaces';
import { BatchError } from '../services/batch-error';
import type { BytesInFlight } from './bytes-in-flight';
import { stringifyJson } from '../services/exact-json';
import { Metrics } from '../services/observability/metrics.service';
import { readRpcRequest, RpcRequest } from './request-body';

const REQUESTS = new WeakMap<object, RpcRequest & { id: string }>();
const OUTCOMES = new WeakMap<object, string>();
/** The requests of RpcServer.warmUp, left out of the metrics and the log. */
const WARM_UP = new WeakSet<object>();
/** How long a warm-up may take before the process says it is ready all the same. */
const WARM_UP_TIMEOUT_MS = 10_000;

/** The RPC request id (the wire format's `id`): the implicit idempotency key of a create, and in the log context. */
export function rpcRequestId(context: RmqContext): string {
  return REQUESTS.get(context.getMessage())!.id;
}

/** Records that an RPC call failed with the contract's error `code` (BatchErrorFilter); calls without one are OK. */
export function setRpcOutcome(context: RmqContext, code: string): void {
  OUTCOMES.set(context.getMessage(), code);
}

/** Where messages that cannot be served as requests are kept for an operator: `<queue>.dead-letter`. */
export function deadLetterQueue(queue: string): string {
  return `${queue}.dead-letter`;
}

/** The dead-letter queue keeps the newest messages only, so a flood of garbage cannot fill the broker. */
const DEAD_LETTER_OPTIONS = {
  durable: true,
  arguments: { 'x-max-length': 10_000, 'x-max-length-bytes': 256 * 1024 * 1024, 'x-overflow': 'drop-head' },
};

/** How long an event that found the database unreachable waits before it goes back to the queue. */
const EVENT_REQUEUE_DELAY_MS = 1000;

/**
 * The RPC transport: NestJS's RMQ server, with each message read by the service itself, so that every message taken
 * from the queue is settled whatever its body:
 * - over BATCH_MAX_MESSAGE_BYTES (checked on the raw bytes, before parsing): answered PAYLOAD_TOO_LARGE, acknowledged;
 * - unreadable (not UTF-8 JSON, nested too deep, no string `pattern`, a `replyTo` without a string `id`) or an unknown
 *   pattern: answered VALIDATION_FAILED when it has a `replyTo`, copied to the dead-letter queue (without its API
 *   key), acknowledged;
 * - otherwise served by its handler and acknowledged when the handler has finished, so a create is acknowledged once
 *   its operation is durably stored (or rejected), never before. A crash before that redelivers it.
 * An event (NestJS's `emit`: no `id`, no `replyTo`) is served like a request and answered to nobody: one that is
 * refused is dead-lettered with its error, one that met an unreachable database goes back to the queue. It gets an id
 * of its own, so a redelivered event is stored again unless its operations carry idempotency keys.
 * Each call is timed with its outcome (OK or the contract's error code) and logged at debug with its request id, AMQP
 * correlation id and pattern. Admission (API key, rate limit) is AuthGuard's.
 */
export class RpcServer extends ServerRMQ {
  private readonly log = new Logger('RpcCall');
  /** The channel the queue is consumed on (set up again after a reconnection). */
  private consuming: Channel | null = null;

  constructor(
    options: NonNullable<RmqOptions['options']>,
    private readonly metrics: Metrics,
    private readonly settings: { maxMessageBytes: number; eventsExchange: string; bytesInFlight: BytesInFlight },
  ) {
    super(options);
  }

  /**
   * Besides the RPC queue: the dead-letter queue, and the events exchange, which callers bind their queues to; every
   * role declares it (the relay's workers too), so callers may start before any worker has.
   */
  async setupChannel(channel: Channel, callback: () => void): Promise<void> {
    this.consuming = channel;
    await channel.assertQueue(deadLetterQueue(this.queue), DEAD_LETTER_OPTIONS);
    await channel.assertExchange(this.settings.eventsExchange, 'topic', { durable: true });
    return super.setupChannel(channel, callback);
  }

  async handleMessage(delivered: Record<string, unknown> | null, channel: Channel): Promise<void> {
    if (!delivered) return;
    const message = delivered as unknown as ConsumeMessage;
    const admitted = this.settings.bytesInFlight.acquire(message.content.length);
    const release = typeof admitted === 'function' ? admitted : await admitted;
    try {
      await this.serve(message, channel);
    } finally {
      release();
    }
  }

  /** One message of the queue, once its bytes fit in the budget (BytesInFlight): see the class. */
  private async serve(message: ConsumeMessage, channel: Channel): Promise<void> {
    const replyTo = textOrUndefined(message.properties.replyTo) || undefined;
    const read = readSafely(message.content, this.settings.maxMessageBytes);
    if ('problem' in read) return this.refuse(message, channel, read.problem, undefined);
    const handler = this.getHandlerByPattern(read.pattern);
    const refused = refusalOf(read, replyTo, handler !== null && handler !== undefined);
    if (refused) return this.refuse(message, channel, refused.error, refused.id);
    const call = { ...read, id: read.id ?? randomUUID() };
    REQUESTS.set(message, call);
    const context = new RmqContext([message, channel, read.pattern]);
    const correlationId: unknown = message.properties.correlationId;
    const end = this.metrics.rpcDuration.startTimer({ pattern: read.pattern });
    let settle = () => channel.ack(message);
    try {
      const response$ = this.transformToObservable(await handler!(read.data, context));
      if (replyTo !== undefined) {
        this.send(response$, (reply) =>
          this.sendMessage({ id: call.id, ...reply }, replyTo, correlationId as string, context),
        );
      } else {
        const refused = await lastValueFrom(response$, { defaultValue: null }).then(
          () => null,
          (error: unknown) => BatchError.fromResponse(error),
        );
        if (refused?.code === 'UNAVAILABLE') settle = () => requeueLater(channel, message);
        else if (refused) this.deadLetter(message, channel, refused, read.pattern);
      }
    } finally {
      whileOpen(settle);
      if (!WARM_UP.has(message)) {
        const outcome = OUTCOMES.get(message) ?? 'OK';
        const durationMs = Math.round(end({ outcome }) * 1000);
        const logged = {
          requestId: call.id,
          correlationId: textOrUndefined(correlationId),
          pattern: read.pattern,
          outcome,
          durationMs,
        };
        this.log.debug(logged, `${read.pattern} ${outcome} in ${durationMs} ms`);
      }
    }
  }

  /**
   * Requests this process sends itself before it says it is ready (main.ts): just started, it runs its code cold,
   * several times slower until V8 has compiled it, and a deploy's first callers would queue behind it. Each goes through
   * the broker and this server's path up to the API key check and back: a createOperation with a key of no client,
   * refused UNAUTHENTICATED (the path beyond would store operations). On queues of their own, exclusive and deleted with
   * their consumers (the RPC queue is shared with the other processes); neither counted nor logged. Resolves with the
   * requests answered, once all are or after WARM_UP_TIMEOUT_MS; a broker that fails meanwhile only ends it early.
   */
  async warmUp(requests: number): Promise<number> {
    const channel = this.consuming;
    let answered = 0;
    if (!channel) return answered;
    const consumers: string[] = [];
    try {
      const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      const { queue: replies } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      let allAnswered = () => {};
      const done = new Promise<void>((resolve) => (allAnswered = resolve));
      const heard = await channel.consume(replies, () => ++answered === requests && allAnswered(), { noAck: true });
      consumers.push(heard.consumerTag);
      const served = await channel.consume(queue, (message) => {
        if (!message) return;
        WARM_UP.add(message);
        void this.handleMessage(message as never, channel);
      });
      consumers.push(served.consumerTag);
      const headers = { 'x-api-key': randomBytes(24).toString('base64url') };
      for (let i = 0; i < requests; i++) {
        const id = `warm-up-${i}`;
        const data = { target: 'warm_up', type: 'insert', values: { id: i, note: 'warm-up' } };
        const request = Buffer.from(JSON.stringify({ pattern: BATCH_PATTERNS.createOperation, data, id }));
        channel.sendToQueue(queue, request, { replyTo: replies, correlationId: id, headers });
      }
      await Promise.race([done, delay(WARM_UP_TIMEOUT_MS, undefined, { ref: false })]);
    } catch (error) {
      this.log.warn(`warm-up ended early: ${(error as Error).message}`);
    }
    for (const tag of consumers) await channel.cancel(tag).catch(() => undefined);
    return answered;
  }

  /** Replies only where a reply can go; a reply that cannot be published (channel closed) is left to the redelivery. */
  sendMessage<T>(reply: T, replyTo: unknown, correlationId: string, context: RmqContext): void {
    if (typeof replyTo !== 'string' || replyTo === '') return;
    this.onProcessingEndHook?.(this.transportId, context);
    (this.channel as ChannelWrapper)
      .sendToQueue(replyTo, Buffer.from(stringifyJson(reply)), { correlationId })
      .catch((error: Error) => this.log.warn(`reply to ${replyTo} not sent: ${error.message}`));
  }

  /** A message that is no request: answered when it can be, kept in the dead-letter queue unless too large, acknowledged. */
  private refuse(message: ConsumeMessage, channel: Channel, problem: BatchError, id: string | undefined): void {
    const { replyTo, correlationId } = message.properties;
    this.metrics.rpcDuration.observe({ pattern: 'unreadable', outcome: problem.code }, 0);
    this.log.warn(`RPC message refused (${problem.code}): ${problem.message}`);
    if (typeof replyTo === 'string' && replyTo !== '') {
      const reply = { ...(id === undefined ? {} : { id }), err: problem.toResponse(), isDisposed: true };
      whileOpen(() => channel.sendToQueue(replyTo, Buffer.from(stringifyJson(reply)), { correlationId }));
    }
    if (problem.code !== 'PAYLOAD_TOO_LARGE') this.deadLetter(message, channel, problem, 'unreadable');
    whileOpen(() => channel.ack(message));
  }

  /**
   * A copy of a refused message for an operator, in `<queue>.dead-letter`: its body and properties as sent, without
   * the API key, with why it was refused in the headers `x-refused-code`, `x-refused-reason` and, when the error has
   * them, `x-refused-details` (JSON). `pattern` is a known pattern, or `unreadable`.
   */
  private deadLetter(message: ConsumeMessage, channel: Channel, problem: BatchError, pattern: string): void {
    this.metrics.rpcDeadLettered.inc({ pattern, code: problem.code });
    const { 'x-api-key': _key, ...kept } = (message.properties.headers ?? {}) as Record<string, unknown>;
    const details =
      problem.details === undefined ? {} : { 'x-refused-details': JSON.stringify(problem.details).slice(0, 2000) };
    whileOpen(() =>
      channel.sendToQueue(deadLetterQueue(this.queue), message.content, {
        ...message.properties,
        headers: {
          ...kept,
          'x-refused-code': problem.code,
          'x-refused-reason': problem.message.slice(0, 500),
          ...details,
        },
        persistent: true,
      }),
    );
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

/** An event that met an unreachable database goes back to the queue, a moment later so that it does not spin. */
function requeueLater(channel: Channel, message: ConsumeMessage): void {
  setTimeout(() => whileOpen(() => channel.nack(message, false, true)), EVENT_REQUEUE_DELAY_MS).unref();
}

/** An AMQP property as the log line takes it: text, or left out. */
function textOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/**
 * Does something on the channel a request came on (acknowledge it, answer it, dead-letter it). When that channel has
 * closed meanwhile (the broker restarted), the broker requeues the request by itself, and its redelivery is handled
 * from what was stored: nothing is left to do on it.
 */
function whileOpen(action: () => unknown): void {
  try {
    action();
  } catch {
    // channel closed: the request comes again
  }
}

/**
 * Why a readable request is refused before any handler runs (and the id to answer it under), or null: a request with a
 * replyTo but no id, an unknown pattern, a pattern that is answered only as a request sent as an event.
 */
function refusalOf(
  read: { pattern: string; id?: string },
  replyTo: string | undefined,
  known: boolean,
): { error: BatchError; id: string | undefined } | null {
  const refused = (message: string, id?: string) => ({ error: new BatchError('VALIDATION_FAILED', message), id });
  if (read.id === undefined && replyTo !== undefined)
    return refused('A request with a replyTo needs a string "id", unique per request');
  if (!known) return refused(`Unknown pattern ${JSON.stringify(read.pattern.slice(0, 100))}`, read.id);
  if (read.id === undefined && !BATCH_EVENT_PATTERNS.includes(read.pattern))
    return refused(
      `${read.pattern} is answered only as a request (send, not emit); events may be ${BATCH_EVENT_PATTERNS.join(' or ')}`,
    );
  return null;
}

/**
 * readRpcRequest, whatever it meets: a message it failed on is refused (dead-lettered and acknowledged) like one it
 * refused, never left unacknowledged, where it would hold a slot of the prefetch until the broker closed the channel.
 */
function readSafely(content: Buffer, maxBytes: number): ReturnType<typeof readRpcRequest> {
  try {
    return readRpcRequest(content, maxBytes);
  } catch (error) {
    return {
      problem: new BatchError('VALIDATION_FAILED', `The message could not be read: ${(error as Error).message}`),
    };
  }
}
