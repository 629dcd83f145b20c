import { BeforeApplicationShutdown, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { once } from 'node:events';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { AppConfig } from '../../config/app-config';
import { Metrics } from '../observability/metrics.service';
import { OutboxWakeup } from './outbox-wakeup';
import type { RelayThreadCommand, RelayThreadData, RelayThreadMessage } from './relay-thread';

/** How long a relay thread that ended on its own waits before it is started again. */
const RESTART_MS = 1000;
/**
 * The thread's young generation at most, where the process runs without scripts/node-flags. With them V8's
 * --max-semi-space-size wins over a worker's resource limits, and the thread's young generation is the process's.
 */
const RELAY_YOUNG_GENERATION_MB = 16;

/**
 * The outbox relay (RelayLoop) in a worker thread of this process: started before the process says it is ready and
 * before the loops start (so that loading it does not slow the first chunks), woken when notifications were written,
 * started again should it end, stopped last at shutdown (it publishes what is left first).
 */
@Injectable()
export class OutboxRelay implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(OutboxRelay.name);
  private thread: { worker: Worker; exited: Promise<unknown> } | null = null;
  private connected = false;
  private running = false;

  constructor(
    private readonly config: AppConfig,
    private readonly wakeup: OutboxWakeup,
    private readonly metrics: Metrics,
  ) {}

  onModuleInit(): Promise<void> {
    this.running = true;
    this.wakeup.listen(() => this.command('wake'));
    return this.start();
  }

  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  /** Whether the relay's broker connection is up (false while it reconnects). */
  get brokerConnected(): boolean {
    return this.connected;
  }

  /** Lets the relay publish what is left (bounded by its publish timeout) and waits for its thread to end. */
  async stop(): Promise<void> {
    this.running = false;
    const thread = this.thread;
    if (!thread) return;
    this.command('stop');
    await thread.exited;
  }

  /** Starts the thread; resolves once it has started (or ended). */
  private start(): Promise<void> {
    const { config } = this;
    const workerData: RelayThreadData = {
      db: config.db,
      applicationName: `batch-service:${config.role}:relay`,
      url: config.rmq.url,
      exchange: config.rmq.eventsExchange,
      intervalMs: config.outboxIntervalMs,
    };
    const worker = new Worker(join(__dirname, 'relay-thread.js'), {
      workerData,
      resourceLimits: { maxYoungGenerationSizeMb: RELAY_YOUNG_GENERATION_MB },
    });
    let started: () => void;
    const starting = new Promise<void>((resolve) => (started = resolve));
    worker.on('message', (message: RelayThreadMessage) => {
      if ('started' in message) started();
      else if ('connected' in message) this.connected = message.connected;
      else if ('heap' in message) this.metrics.relayHeap(message.heap);
      else this.logger[message.level]?.(message.message);
    });
    worker.on('error', (error) => this.logger.error(`outbox relay thread failed: ${error.message}`));
    const exited = once(worker, 'exit').then(() => {
      started();
      this.connected = false;
      this.thread = null;
      if (this.running) setTimeout(() => this.running && !this.thread && void this.start(), RESTART_MS).unref();
    });
    this.thread = { worker, exited };
    return starting;
  }

  private command(command: RelayThreadCommand): void {
    this.thread?.worker.postMessage(command);
  }
}
