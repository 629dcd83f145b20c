import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Client } from 'pg';
import { AppConfig } from '../../config/app-config';
import { clientConfig } from '../storage/pg-client';

/** Where a change of batch.clients is notified (migration ClientChangesNotified). */
const CHANNEL = 'batch_clients_changed';
const RECONNECT_MS = 1000;

/**
 * Hears changes of clients as they commit, on a connection of its own that LISTENs for them (opened at the first
 * `watch()`, reopened a second after it is lost). `changed` callbacks run on every change and whenever changes may
 * have been missed: the connection lost, or listening anew.
 */
@Injectable()
export class ClientChanges implements OnApplicationShutdown {
  private readonly logger = new Logger(ClientChanges.name);
  private readonly callbacks: (() => void)[] = [];
  private connection: Client | null = null;
  private retry: NodeJS.Timeout | null = null;
  private listening = false;
  private stopped = false;

  constructor(private readonly config: AppConfig) {}

  onChange(callback: () => void): void {
    this.callbacks.push(callback);
  }

  /** Whether changes are heard now: what is read from batch.clients stays current until the next `changed`. */
  watch(): boolean {
    if (!this.connection && !this.retry && !this.stopped) this.listen();
    return this.listening;
  }

  private listen(): void {
    const connection = new Client({
      ...clientConfig(this.config.db),
      application_name: 'batch-service:client-changes',
    });
    this.connection = connection;
    const lost = (error?: Error) => {
      if (this.connection !== connection) return;
      if (this.listening) this.logger.warn(`not listening for client changes: ${error?.message ?? 'connection ended'}`);
      this.connection = null;
      this.listening = false;
      this.changed();
      connection.end().catch(() => undefined);
      if (this.stopped) return;
      this.retry = setTimeout(() => {
        this.retry = null;
        this.watch();
      }, RECONNECT_MS).unref();
    };
    connection.on('error', lost);
    connection.on('end', () => lost());
    connection.on('notification', () => this.changed());
    connection
      .connect()
      .then(() => connection.query(`LISTEN ${CHANNEL}`))
      .then(() => {
        if (this.connection !== connection) return;
        this.listening = true;
        this.changed();
      }, lost);
  }

  private changed(): void {
    for (const callback of this.callbacks) callback();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const connection = this.connection;
    this.connection = null;
    this.listening = false;
    await connection?.end().catch(() => undefined);
  }
}
