import type { LogLevel } from '@nestjs/common';
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'pg';
import type { AppConfig } from '../../config/app-config';
import { clientConfig, POOL_SETTINGS } from '../storage/pg-client';
import { Wakeup } from '../worker-loop';
import { RelayLoop, RelaySettings } from './outbox-relay';

/** What the thread is started with. */
export interface RelayThreadData extends RelaySettings {
  db: AppConfig['db'];
  applicationName: string;
}

/** Messages from the thread: it has started, its broker connection came or went, a line to log, or its V8 heap. */
export type RelayThreadMessage =
  | { started: true }
  | { connected: boolean }
  | { level: LogLevel; message: string }
  | { heap: { used: number; total: number } };

/** How often the thread reports its heap: a thread has a V8 heap of its own, which the process's metrics leave out. */
const HEAP_REPORT_MS = 5000;

/** Messages to the thread: notifications were written, or it is to publish what is left and end. */
export type RelayThreadCommand = 'wake' | 'stop';

// The outbox relay's thread: the relay loop with a connection of its own to the database and one to the broker. Its
// work is megabytes of text a chunk (read from PostgreSQL, written to the broker): on the worker's own event loop it
// held the next chunk's statements back while it ran.
const port = parentPort!;
const data = workerData as RelayThreadData;
const send = (message: RelayThreadMessage) => port.postMessage(message);
process.on('unhandledRejection', (reason) =>
  send({
    level: 'error',
    message: `unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}`,
  }),
);

const pool = new Pool({
  ...clientConfig(data.db),
  max: 1,
  ...POOL_SETTINGS,
  application_name: data.applicationName,
});
// a connection that dies while idle (the database restarted) is dropped from the pool; the next turn opens another
pool.on('error', (error) => send({ level: 'warn', message: `relay database connection lost: ${error.message}` }));
const wakeup = new Wakeup();
const logger = { warn: (message: string) => send({ level: 'warn', message }) };
const relay = new RelayLoop(data, pool, wakeup, logger, (connected) => send({ connected }));
relay.onApplicationBootstrap();
send({ started: true });
const reportHeap = () => {
  const heap = getHeapStatistics();
  send({ heap: { used: heap.used_heap_size, total: heap.total_heap_size } });
};
reportHeap();
setInterval(reportHeap, HEAP_REPORT_MS).unref();

port.on('message', (command: RelayThreadCommand) => {
  if (command === 'wake') return wakeup.notify();
  void relay
    .stop()
    .then(() => pool.end())
    .finally(() => process.exit(0));
});
