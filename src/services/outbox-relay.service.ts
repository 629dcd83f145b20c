import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import { setTimeout as delay } from 'node:timers/promises';
import { AppConfig } from '../config/app-config';
import { Database } from './database';
import { OutboxWakeup } from './poller-wakeup.service';
import { connectAmqp } from '../config/amqp';

const BATCH_SIZE = 500;
const PUBLISH_TIMEOUT_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;

/**
 * Publishes the outbox after commit: locks a batch of unsent rows, makes each into its message (a chunk writes a
 * reference to the operations it settled for a client; batch.settled_event makes the message from their outcomes,
 * here, off the chunk's path), publishes each as a persistent message on
 * a confirm channel, and marks them sent only once the broker confirmed all of them. A crash or a broker
 * outage in between leaves them unsent, so they are published again: delivery is at least once.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(OutboxRelay.name);
  private connection: AmqpConnectionManager | null = null;
  private channel: ChannelWrapper | null = null;
  private running = false;
  private loop: Promise<void> | null = null;
  private readonly stopping = new AbortController();

  constructor(
    private readonly config: AppConfig,
    private readonly db: Database,
    private readonly wakeup: OutboxWakeup,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.role === 'api') return;
    const exchange = this.config.rmq.eventsExchange;
    this.connection = connectAmqp([this.config.rmq.url]);
    this.connection.on('disconnect', ({ err }) =>
      this.logger.warn(`broker connection lost: ${err?.message ?? 'closed'}`),
    );
    this.channel = this.connection.createChannel({
      confirm: true,
      publishTimeout: PUBLISH_TIMEOUT_MS,
      setup: (channel: ConfirmChannel) => channel.assertExchange(exchange, 'topic', { durable: true }),
    });
    this.running = true;
    this.loop = this.run();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  /** Whether the relay's broker connection is up (false while it reconnects, and when this process does not relay). */
  get brokerConnected(): boolean {
    return this.connection?.isConnected() ?? false;
  }

  /** Stops the loop, publishes what is left (bounded by PUBLISH_TIMEOUT_MS), and closes the connection. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopping.abort();
    this.wakeup.notify();
    await this.loop;
    const deadline = Date.now() + PUBLISH_TIMEOUT_MS;
    while (Date.now() < deadline && (await this.relayBatch().catch(() => 0)) > 0);
    await this.channel?.close().catch(() => undefined);
    await this.connection?.close().catch(() => undefined);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        const sent = await this.relayBatch();
        failures = 0;
        if (sent < BATCH_SIZE && this.running) await this.wakeup.sleep(this.config.outboxIntervalMs);
      } catch (error) {
        failures += 1;
        const backoff = Math.min(this.config.outboxIntervalMs * 2 ** failures, MAX_BACKOFF_MS);
        this.logger.warn(`outbox relay failed, retrying in ${backoff} ms: ${(error as Error).message}`);
        await delay(backoff, undefined, { signal: this.stopping.signal }).catch(() => undefined);
      }
    }
  }

  /** Publishes one batch of unsent messages; returns how many. */
  relayBatch(): Promise<number> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string; routing_key: string; payload: string }>(
        `SELECT id, routing_key, coalesce(payload, batch.settled_event(id))::text AS payload
           FROM batch.outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [BATCH_SIZE],
      );
      if (rows.length === 0) return 0;
      await Promise.all(
        rows.map((row) =>
          this.channel!.publish(this.config.rmq.eventsExchange, row.routing_key, Buffer.from(row.payload), {
            persistent: true,
            contentType: 'application/json',
            messageId: `outbox-${row.id}`,
            type: 'operations.settled',
          }),
        ),
      );
      await tx.query(`UPDATE batch.outbox SET sent_at = now() WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)]);
      return rows.length;
    });
  }
}
