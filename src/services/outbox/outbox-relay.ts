import type { LoggerService } from '@nestjs/common';
import type { AmqpConnectionManager, ChannelWrapper } from 'amqp-connection-manager';
import type { ConfirmChannel } from 'amqplib';
import type { Pool, PoolClient } from 'pg';
import { Wakeup, WorkerLoop } from '../worker-loop';
import { inTransaction } from '../storage/pg-client';
import { connectAmqp } from '../../config/amqp-connection';
import { JOB_FINISHED_ROUTING_KEY_PREFIX } from '../../interfaces/job.interfaces';
import { messageBytes, SETTLED_MESSAGE_COLUMNS, SettledMessageColumns } from './settled-events';

/** Messages per batch at most, and their size at most (beyond the first): a backlog of large ones fits in memory. */
const BATCH_SIZE = 500;
const BATCH_BYTES = 16 * 1024 * 1024;
const PUBLISH_TIMEOUT_MS = 10_000;

/** The AMQP `type` of an outbox message, so consumers can tell the two kinds apart without parsing. */
function messageType(routingKey: string): string {
  return routingKey.startsWith(JOB_FINISHED_ROUTING_KEY_PREFIX) ? 'job.finished' : 'operations.settled';
}

/**
 * Unsent messages, oldest first, up to $1 of them and about $2 bytes, each with its text (payload) or what its text is
 * made of (its runs, its exceptions and batch.settled_parts); locked so that relays share the work, and read only once
 * locked: a row another relay holds is skipped before its parts are read, not after. One the broker refused waits for
 * its retry time.
 */
const UNSENT_MESSAGES_SQL = `
  WITH locked AS MATERIALIZED (
    SELECT o FROM batch.outbox o
     WHERE sent_at IS NULL AND id = ANY (ARRAY(
       SELECT id FROM (SELECT id, coalesce(size, octet_length(payload)) AS size, sum(coalesce(size, octet_length(payload))) OVER (ORDER BY id) AS running
                         FROM batch.outbox WHERE sent_at IS NULL AND (retry_at IS NULL OR retry_at <= now()) ORDER BY id LIMIT $1) unsent
        WHERE running - size < $2))
     ORDER BY id FOR UPDATE SKIP LOCKED)
  SELECT (l.o).id, (l.o).routing_key, ${SETTLED_MESSAGE_COLUMNS('(l.o)')}
    FROM locked l ORDER BY (l.o).id`;

/** The error amqplib confirms a message with when the broker refused it (a negative acknowledgement). */
const REFUSED = 'message nacked';

/** Unsent messages, locked for this transaction (UNSENT_MESSAGES_SQL), each with its text as UTF-8. */
export async function unsentMessages(
  tx: PoolClient,
  count: number,
  bytes: number,
): Promise<{ id: string; routing_key: string; payload: Buffer }[]> {
  const { rows } = await tx.query<{ id: string; routing_key: string } & SettledMessageColumns>({
    name: 'relay-unsent',
    text: UNSENT_MESSAGES_SQL,
    values: [count, bytes],
  });
  return rows.map(({ id, routing_key, ...message }) => ({ id, routing_key, payload: messageBytes(message) }));
}

/** What the relay needs to know: the broker, the exchange it publishes to, and how often it looks when not woken. */
export interface RelaySettings {
  url: string;
  exchange: string;
  intervalMs: number;
}

/**
 * Publishes the outbox after commit (each message as a chunk wrote it, settled-events.ts): locks a batch of unsent
 * rows, publishes each as a persistent message on a confirm channel, and marks them sent only once the broker
 * confirmed all of them. A crash or a broker outage in between leaves them unsent, so they are published again:
 * delivery is at least once. It runs in a thread of its own (relay-thread.ts), which gives it its logger and hears
 * its broker connection come and go (`onBroker`). While there is no broker (never reached yet, or lost) it leaves the
 * outbox alone, and starts again when one answers.
 */
export class RelayLoop extends WorkerLoop {
  private connection: AmqpConnectionManager | null = null;
  private channel: ChannelWrapper | null = null;
  private connected = false;

  constructor(
    private readonly settings: RelaySettings,
    private readonly pool: Pool,
    wakeup: Wakeup,
    protected readonly logger: Pick<LoggerService, 'warn'>,
    private readonly onBroker: (connected: boolean) => void,
  ) {
    super(wakeup, settings.intervalMs);
  }

  onApplicationBootstrap(): void {
    const { exchange } = this.settings;
    this.connection = connectAmqp([this.settings.url]);
    this.connection.on('connect', () => {
      this.connected = true;
      this.onBroker(true);
      this.wakeup.notify();
    });
    this.connection.on('disconnect', ({ err }) => {
      this.connected = false;
      this.onBroker(false);
      this.logger.warn(`broker connection lost: ${err?.message ?? 'closed'}`);
    });
    this.channel = this.connection.createChannel({
      confirm: true,
      publishTimeout: PUBLISH_TIMEOUT_MS,
      setup: (channel: ConfirmChannel) => channel.assertExchange(exchange, 'topic', { durable: true }),
    });
    // a setup that fails (the channel ended midway) is tried again at the next reconnect; unheard, it is a rejection
    this.channel.on('error', (error: Error) => this.logger.warn(`broker channel setup failed: ${error.message}`));
    super.onApplicationBootstrap();
  }

  /**
   * Stops the loop, publishes what is left (bounded by PUBLISH_TIMEOUT_MS) when there is a broker, and closes the
   * connection.
   */
  async stop(): Promise<void> {
    if (!this.connection) return;
    await super.stop();
    const deadline = Date.now() + PUBLISH_TIMEOUT_MS;
    while (this.connected && Date.now() < deadline && (await this.relayBatch().catch(() => 0)) > 0);
    await this.channel?.close().catch(() => undefined);
    await this.connection.close().catch(() => undefined);
    this.connection = null;
  }

  /** Without a broker there is nothing to do: publishing would wait for one while holding the rows it took. */
  protected async turn(): Promise<boolean> {
    return this.connected && (await this.relayBatch()) > 0;
  }

  /**
   * Publishes one batch of unsent messages; returns how many. Those the broker refused are tried again after their
   * back-off, the others marked sent; any other failure (a timeout, a lost channel) leaves the whole batch unsent.
   */
  relayBatch(): Promise<number> {
    return inTransaction(this.pool, async (tx) => {
      const rows = await unsentMessages(tx, BATCH_SIZE, BATCH_BYTES);
      if (rows.length === 0) return 0;
      const confirms = await Promise.allSettled(
        rows.map((row) =>
          this.channel!.publish(this.settings.exchange, row.routing_key, row.payload, {
            persistent: true,
            contentType: 'application/json',
            messageId: `outbox-${row.id}`,
            type: messageType(row.routing_key),
          }),
        ),
      );
      const failure = confirms.find((c) => c.status === 'rejected' && (c.reason as Error)?.message !== REFUSED);
      if (failure) throw (failure as PromiseRejectedResult).reason;
      const refused = rows.filter((_, i) => confirms[i].status === 'rejected');
      await tx.query({
        name: 'relay-sent',
        text: `UPDATE batch.outbox
                  SET sent_at = CASE WHEN id = ANY($2::bigint[]) THEN NULL ELSE now() END,
                      refusals = refusals + (id = ANY($2::bigint[]))::int,
                      retry_at = CASE WHEN id = ANY($2::bigint[])
                                      THEN now() + least(interval '5 minutes', interval '1 second' * 2 ^ least(refusals, 9)) END
                WHERE id = ANY($1::bigint[])`,
        values: [rows.map((r) => r.id), refused.map((r) => r.id)],
      });
      if (refused.length > 0) {
        const keys = [...new Set(refused.map((r) => r.routing_key))].join(', ');
        this.logger.warn(`the broker refused ${refused.length} message(s) (${keys}): tried again after a back-off`);
      }
      return rows.length;
    });
  }
}
