/**
 * `npm run demo`: a caller of the Batch Service, as another service would be, for a newcomer to watch it work.
 *
 * Needs the service running (`BATCH_ADMIN_API_KEY=local-admin-key npm start` in another terminal) and reads the
 * same environment (and `.env`) with the same defaults. It creates the target tables `demo_inventory` and
 * `demo_reservations` if missing (directly in the database: a local convenience, not what callers do), creates
 * the client `demo` over REST with the admin key (or rotates its key when it exists), then sends a steady stream
 * of reservations, confirmations, cancellations, stock movements and restocks over RabbitMQ RPC, a few of which
 * fail on purpose, and counts their outcomes from the settled notifications. It prints one line a second and
 * stops by itself.
 *
 *   npm run demo -- --duration 60 --rate 50        (or DEMO_DURATION_SECONDS, DEMO_RATE)
 *
 * Exits 0 when every operation it sent was settled and notified, 1 otherwise.
 */
import { Logger } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { Client } from 'pg';
import {
  BatchServiceClient,
  ICreateBatchOperationRequest,
  ISettledOperation,
  SettledEventsConsumer,
} from '../src/client';
import { AppConfig, loadConfig } from '../src/config/app-config';
import { quoteIdent } from '../src/services/storage/database';
import { clientConfig } from '../src/services/storage/pg-client';

const CLIENT_NAME = 'demo';
const INVENTORY = 'demo_inventory';
const RESERVATIONS = 'demo_reservations';
const TICK_MS = 100;
const DRAIN_TIMEOUT_MS = 20_000;
const MAX_IN_FLIGHT = 1000;

interface DemoOptions {
  durationSeconds: number;
  rate: number;
}

/** `--duration N` / `--duration=N` and `--rate N` win over DEMO_DURATION_SECONDS and DEMO_RATE; defaults 60 s, 50/s. */
export function demoOptions(argv: string[], env: Record<string, string | undefined>): DemoOptions {
  const flag = (name: string): string | undefined => {
    const index = argv.findIndex((arg) => arg === `--${name}` || arg.startsWith(`--${name}=`));
    if (index < 0) return undefined;
    return argv[index].includes('=') ? argv[index].split('=')[1] : argv[index + 1];
  };
  const number = (raw: string | undefined, fallback: number, min: number, max: number, what: string): number => {
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max)
      throw new Error(`${what} must be a number from ${min} to ${max}, got "${raw}"`);
    return value;
  };
  return {
    durationSeconds: number(
      flag('duration') ?? env.DEMO_DURATION_SECONDS,
      60,
      1,
      3600,
      'duration (--duration, DEMO_DURATION_SECONDS)',
    ),
    rate: number(flag('rate') ?? env.DEMO_RATE, 50, 1, 5000, 'rate (--rate, DEMO_RATE)'),
  };
}

// ---------- the world the demo writes to ----------

const SKUS = [
  'TENT-2P',
  'TENT-4P',
  'STOVE',
  'LANTERN',
  'KAYAK',
  'PADDLE',
  'BIKE-M',
  'BIKE-L',
  'HELMET',
  'SUP-BOARD',
  'SNOWSHOE',
  'SLED',
];
const GUESTS = [
  'Ada',
  'Grace',
  'Alan',
  'Edsger',
  'Barbara',
  'Donald',
  'Margaret',
  'Ken',
  'Frances',
  'Tony',
  'Radia',
  'Niklaus',
];

/** Creates the demo's target tables if missing; returns the next free reservation id. */
async function createDemoTables(config: AppConfig): Promise<number> {
  const db = new Client(clientConfig(config.db));
  await db.connect();
  try {
    const schema = quoteIdent(config.targetSchemas[0]);
    await db.query(`CREATE TABLE IF NOT EXISTS ${schema}.${INVENTORY} (
      sku text PRIMARY KEY,
      name text NOT NULL,
      stock integer NOT NULL CHECK (stock >= 0),
      price numeric(10,2) NOT NULL
    )`);
    await db.query(`CREATE TABLE IF NOT EXISTS ${schema}.${RESERVATIONS} (
      id bigint PRIMARY KEY,
      sku text NOT NULL,
      guest text NOT NULL,
      seats integer NOT NULL CHECK (seats BETWEEN 1 AND 10),
      status text NOT NULL DEFAULT 'HELD',
      created_at timestamptz NOT NULL DEFAULT now()
    )`);
    const [{ max }] = (
      await db.query<{ max: string }>(`SELECT coalesce(max(id), 0)::text AS max FROM ${schema}.${RESERVATIONS}`)
    ).rows;
    return Number(max) + 1;
  } finally {
    await db.end();
  }
}

/** One step of the stream; the plan repeats every 20 operations, one of which is a mistake. */
type Step = 'reserve' | 'confirm' | 'cancel' | 'add-seat' | 'take-stock' | 'restock' | 'mistake';
const PLAN: Step[] = [
  'reserve',
  'take-stock',
  'reserve',
  'confirm',
  'reserve',
  'take-stock',
  'restock',
  'reserve',
  'confirm',
  'add-seat',
  'reserve',
  'take-stock',
  'reserve',
  'cancel',
  'reserve',
  'confirm',
  'reserve',
  'take-stock',
  'mistake',
  'confirm',
];
const MISTAKES = ['double-booking', 'oversell', 'too-many-seats'] as const;

let nextReservationId = 1;
let lastReservationId = 0;
let mistakes = 0;
/** Reservations whose insert was notified COMPLETED: what confirmations, cancellations and extra seats address. */
const held: number[] = [];

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)];
const between = (low: number, high: number): number => low + Math.floor(Math.random() * (high - low + 1));

function restock(sku: string): ICreateBatchOperationRequest {
  return {
    target: INVENTORY,
    type: 'upsert',
    values: {
      sku,
      name: sku.toLowerCase().replace('-', ' '),
      stock: between(300, 500),
      price: (between(1500, 9000) / 100).toFixed(2),
    },
    priority: 10,
    label: 'RESTOCK',
  };
}

function reserve(): ICreateBatchOperationRequest & { reservationId: number } {
  const id = nextReservationId++;
  lastReservationId = id;
  return {
    target: RESERVATIONS,
    type: 'insert',
    values: { id, sku: pick(SKUS), guest: pick(GUESTS), seats: between(1, 4) },
    idempotencyKey: `demo-reserve-${id}`,
    label: 'RESERVE',
    reservationId: id,
  };
}

/** A mistake a real caller could make; the database refuses it when it is applied, and the operation ends FAILED. */
function mistake(): ICreateBatchOperationRequest {
  switch (MISTAKES[mistakes++ % MISTAKES.length]) {
    case 'double-booking': // 23505 unique violation: that id was just reserved
      return {
        target: RESERVATIONS,
        type: 'insert',
        values: { id: lastReservationId, sku: pick(SKUS), guest: pick(GUESTS), seats: 1 },
        label: 'RESERVE',
      };
    case 'oversell': // 23514 check violation: stock cannot go below 0
      return {
        target: INVENTORY,
        type: 'increment',
        key: { sku: pick(SKUS) },
        values: { stock: -100_000 },
        label: 'TAKE_STOCK',
      };
    case 'too-many-seats': // 23514 check violation: at most 10 seats
      return {
        target: RESERVATIONS,
        type: 'update',
        key: { id: lastReservationId },
        values: { seats: 12 },
        label: 'ADD_SEAT',
      };
  }
}

function nextOperation(step: Step): ICreateBatchOperationRequest & { reservationId?: number } {
  if (held.length === 0 && (step === 'confirm' || step === 'cancel' || step === 'add-seat')) return reserve();
  switch (step) {
    case 'reserve':
      return reserve();
    case 'confirm':
      return {
        target: RESERVATIONS,
        type: 'update',
        key: { id: pick(held) },
        values: { status: 'CONFIRMED' },
        label: 'CONFIRM',
      };
    case 'cancel':
      return { target: RESERVATIONS, type: 'delete', key: { id: held.shift()! }, label: 'CANCEL' };
    case 'add-seat':
      return {
        target: RESERVATIONS,
        type: 'increment',
        key: { id: pick(held) },
        values: { seats: 1 },
        label: 'ADD_SEAT',
      };
    case 'take-stock':
      return {
        target: INVENTORY,
        type: 'increment',
        key: { sku: pick(SKUS) },
        values: { stock: -between(1, 3) },
        label: 'TAKE_STOCK',
      };
    case 'restock':
      return restock(pick(SKUS));
    case 'mistake':
      return mistake();
  }
}

// ---------- bookkeeping: what was sent, what was notified ----------

class Tally {
  sent = 0;
  rejected = 0;
  inFlight = 0;
  settled = 0;
  failed = 0;
  lastRejection = '';
  /** id → the reservation it inserts (0 for others), for operations whose create was answered. */
  private readonly created = new Map<string, number>();
  /** Notified before their create was answered (the worker can be that quick). */
  private readonly early = new Map<string, ISettledOperation>();

  onCreated(id: string, reservationId: number): void {
    this.sent += 1;
    this.created.set(id, reservationId);
    const outcome = this.early.get(id);
    if (outcome) {
      this.early.delete(id);
      this.onSettled(outcome);
    }
  }

  /** Delivery is at least once: each operation id counts once. */
  onSettled(operation: ISettledOperation): void {
    if (!this.created.has(operation.id)) {
      this.early.set(operation.id, operation);
      return;
    }
    const reservationId = this.created.get(operation.id)!;
    this.created.delete(operation.id);
    this.settled += 1;
    if (operation.status === 'FAILED') this.failed += 1;
    else if (reservationId > 0) held.push(reservationId);
  }

  get unsettled(): number {
    return this.created.size + this.inFlight;
  }
}

// ---------- the run ----------

async function rest<T>(baseUrl: string, adminKey: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(baseUrl + path, {
    method,
    headers: { 'x-api-key': adminKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** The key of the client `demo`: created with the demo's targets, or, when it exists, a fresh key for it. */
async function demoClientKey(baseUrl: string, adminKey: string, rate: number): Promise<string> {
  const clients = await rest<{ id: string; name: string; revokedAt: string | null }[]>(
    baseUrl,
    adminKey,
    'GET',
    '/api/clients',
  );
  const existing = clients.find((c) => c.name === CLIENT_NAME && c.revokedAt === null);
  if (existing)
    return (await rest<{ apiKey: string }>(baseUrl, adminKey, 'POST', `/api/clients/${existing.id}/rotate-key`)).apiKey;
  const created = await rest<{ apiKey: string }>(baseUrl, adminKey, 'POST', '/api/clients', {
    name: CLIENT_NAME,
    targets: [INVENTORY, RESERVATIONS],
    rateLimitPerSecond: Math.max(1000, rate * 4),
  });
  return created.apiKey;
}

function line(elapsedMs: number, tally: Tally): string {
  const seconds = String(Math.round(elapsedMs / 1000)).padStart(3);
  const rejected = tally.rejected ? `  rejected ${tally.rejected} (${tally.lastRejection})` : '';
  return `[demo] ${seconds} s  sent ${tally.sent}  settled ${tally.settled}  failed ${tally.failed}  awaiting outcome ${tally.unsettled}${rejected}`;
}

async function main(): Promise<number> {
  Logger.overrideLogger(['fatal', 'error', 'warn']); // the RPC client's connection chatter would drown the demo's lines
  if (existsSync('.env')) process.loadEnvFile('.env');
  const config = loadConfig();
  const { durationSeconds, rate } = demoOptions(process.argv.slice(2), process.env);
  const baseUrl = `http://127.0.0.1:${config.port}`;
  const dashboard = `http://localhost:${config.port}/`;
  if (!config.adminApiKey) {
    console.error(
      '[demo] BATCH_ADMIN_API_KEY is not set: start the service with one and give the demo the same, e.g.\n' +
        '         BATCH_ADMIN_API_KEY=local-admin-key npm start      (one terminal)\n' +
        '         BATCH_ADMIN_API_KEY=local-admin-key npm run demo   (another)',
    );
    return 1;
  }
  try {
    await rest(baseUrl, config.adminApiKey, 'GET', '/api/stats');
  } catch (error) {
    console.error(
      `[demo] The Batch Service does not answer at ${baseUrl} with this admin key (${(error as Error).message}).\n` +
        '       Start it first, with the same BATCH_ADMIN_API_KEY: BATCH_ADMIN_API_KEY=<key> npm start',
    );
    return 1;
  }

  nextReservationId = await createDemoTables(config);
  const apiKey = await demoClientKey(baseUrl, config.adminApiKey, rate);
  const tally = new Tally();
  const events = new SettledEventsConsumer({
    url: config.rmq.url,
    exchange: config.rmq.eventsExchange,
    client: CLIENT_NAME,
  });
  await events.start((event) => event.operations.forEach((operation) => tally.onSettled(operation)));
  const rpc = new BatchServiceClient({ url: config.rmq.url, queue: config.rmq.queue, apiKey });

  const send = (operations: (ICreateBatchOperationRequest & { reservationId?: number })[]): Promise<void> => {
    tally.inFlight += operations.length;
    const requests = operations.map(({ reservationId, ...operation }) => ({
      operation,
      reservationId: reservationId ?? 0,
    }));
    const call =
      requests.length === 1
        ? rpc.createOperation(requests[0].operation).then((created) => [created])
        : rpc.createOperations(requests.map((r) => r.operation)).then((created) => created.operations);
    return call
      .then(
        (created) => created.forEach((c, i) => tally.onCreated(c.id, requests[i].reservationId)),
        (error: Error & { code?: string }) => {
          tally.rejected += operations.length;
          tally.lastRejection = `${error.code ?? 'ERROR'}: ${error.message}`;
        },
      )
      .finally(() => (tally.inFlight -= operations.length));
  };

  console.log(
    `[demo] Sending about ${rate} operations/s for ${durationSeconds} s as client "${CLIENT_NAME}" to ${INVENTORY} and ${RESERVATIONS}.`,
  );
  console.log(
    `[demo] Watch them on the dashboard: ${dashboard}  (API key: the BATCH_ADMIN_API_KEY you started the service with)`,
  );
  let stopping = false;
  process.once('SIGINT', () => {
    stopping = true;
    process.once('SIGINT', () => process.exit(130));
  });

  const started = Date.now();
  const requests: Promise<void>[] = [send(SKUS.map(restock))]; // the shelves, stocked in one bulk request
  let planned = SKUS.length;
  let nextLine = started + 1000;
  while (!stopping && Date.now() - started < durationSeconds * 1000) {
    const due = Math.floor(((Date.now() - started) / 1000) * rate) + SKUS.length;
    for (; planned < due && tally.inFlight < MAX_IN_FLIGHT; planned++)
      requests.push(send([nextOperation(PLAN[planned % PLAN.length])]));
    if (Date.now() >= nextLine) {
      console.log(line(Date.now() - started, tally));
      nextLine += 1000;
    }
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }

  await Promise.all(requests);
  const drainUntil = Date.now() + DRAIN_TIMEOUT_MS;
  while (tally.unsettled > 0 && Date.now() < drainUntil) {
    if (Date.now() >= nextLine) {
      console.log(line(Date.now() - started, tally));
      nextLine += 1000;
    }
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
  }
  await rpc.close();
  await events.stop();

  console.log(
    `[demo] Done: sent ${tally.sent}, settled ${tally.settled} (${tally.settled - tally.failed} completed, ${tally.failed} failed), rejected ${tally.rejected}.`,
  );
  console.log(
    `[demo] The failed ones are on the dashboard with their database errors, each with a Retry button: ${dashboard}`,
  );
  if (tally.unsettled > 0)
    console.error(
      `[demo] ${tally.unsettled} operations were not notified within ${DRAIN_TIMEOUT_MS / 1000} s after the last send.`,
    );
  return tally.unsettled === 0 && tally.rejected === 0 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error) => {
      console.error('[demo] failed:', error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
