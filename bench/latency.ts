import { setTimeout as sleep } from 'node:timers/promises';
import type { Figure } from './report';
import { BenchService, residentMegabytes } from './service';

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * A steady stream of createOperation calls at `rate` per second into `bench`, until stopped: each call made while
 * `measuring` is timed from the call to its settled notification (`latencies`) and to its reply (`replies`).
 */
export class CreateStream {
  measuring = false;
  readonly latencies: number[] = [];
  /** The latencies of the operations sent in the first `earlySeconds` (given) after the stream started. */
  readonly early: number[] = [];
  readonly replies: number[] = [];
  /** The first measured operation's id. */
  firstMeasured: bigint | null = null;
  measured = 0;
  private outstanding = 0;
  private stopped = false;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly service: BenchService,
    private readonly rate: number,
    private readonly earlySeconds = 0,
  ) {}

  async start(): Promise<void> {
    const rpc = this.service.rpc();
    // Only what is in flight is kept (a 10-minute run creates over a million operations): a measured operation
    // leaves `sentAt` with its first notification, and a notification is kept only until its create's reply, if it
    // came first.
    const sentAt = new Map<string, number>();
    const notifiedFirst = new Map<string, number>();
    let started = 0; // when the stream starts, below
    const record = (sent: number, notifiedAt: number) => {
      this.latencies.push(notifiedAt - sent);
      if (sent - started < this.earlySeconds * 1000) this.early.push(notifiedAt - sent);
    };
    const notified = await this.service.notifications((id) => {
      const sent = sentAt.get(id);
      if (sent === undefined) notifiedFirst.set(id, performance.now());
      else record(sent, performance.now());
      sentAt.delete(id);
    });
    const tick = 10; // ms
    started = performance.now();
    this.running = (async () => {
      for (let sent = 0; !this.stopped;) {
        const due = Math.floor(((performance.now() - started) / 1000) * this.rate);
        for (; sent < due; sent++) {
          const at = performance.now();
          const measured = this.measuring;
          if (measured) this.measured += 1;
          this.outstanding += 1;
          void rpc
            .createOperation({ target: 'bench', type: 'insert', values: { qty: sent % 100, note: `n${sent}` } })
            .then(({ id }) => {
              this.outstanding -= 1;
              if (measured) this.replies.push(performance.now() - at);
              const notifiedAt = notifiedFirst.get(id);
              notifiedFirst.delete(id);
              if (!measured) return;
              if (notifiedAt === undefined) sentAt.set(id, at);
              else record(at, notifiedAt);
              if (this.firstMeasured === null || BigInt(id) < this.firstMeasured) this.firstMeasured = BigInt(id);
            });
        }
        await sleep(tick - ((performance.now() - started) % tick));
      }
      const deadline = performance.now() + 30_000;
      while (this.outstanding > 0 && performance.now() < deadline) await sleep(50);
      while (this.latencies.length < this.measured && performance.now() < deadline) await sleep(50);
      await notified.stop();
      await rpc.close();
      if (this.latencies.length < this.measured)
        throw new Error(`only ${this.latencies.length} of ${this.measured} operations were notified`);
    })();
  }

  /** Stops sending, waits for what was measured to be notified; the latencies, sorted. */
  async stop(): Promise<number[]> {
    this.stopped = true;
    await this.running;
    return this.latencies.sort((a, b) => a - b);
  }
}

/**
 * The first minute of a run, left out of the memory's growth: the service's resident memory climbs by about 50 MB in
 * its first 30–60 s as V8 grows its heap to the size the load keeps it at (heap snapshots of the live objects
 * minutes apart show them flat), which a growth over the whole run counted as if it went on.
 */
const WARM_UP_MS = 60_000;

/**
 * Latency and memory, as callers see them after a deploy: a steady stream of createOperation calls at `rate` per second
 * for `seconds`, from the moment the service answers /health (nothing left out for warming up), each timed from the
 * call to its settled notification, over the first minute and over the whole run; the service's resident memory
 * sampled all along, its growth read after the first minute (WARM_UP_MS).
 */
export async function benchLatency(options: { rate: number; seconds: number; interval: number }): Promise<Figure[]> {
  const service = new BenchService();
  service.env.BATCH_PROCESS_OPERATION_INTERVAL = String(options.interval);
  const { db } = service;
  try {
    await service.start(['all']); // it makes its database
    const pid = service.process('all').pid();
    await db.query(`CREATE TABLE public.bench (id bigserial PRIMARY KEY, qty int NOT NULL, note text)`);
    const firstMinute = Math.min(60, options.seconds);
    const stream = new CreateStream(service, options.rate, firstMinute);
    stream.measuring = true;
    await stream.start();
    const memory: number[] = [];
    const afterWarmUp: number[] = [];
    const began = performance.now();
    const until = began + options.seconds * 1000;
    while (performance.now() < until) {
      const megabytes = residentMegabytes(pid);
      memory.push(megabytes);
      if (performance.now() - began >= WARM_UP_MS) afterWarmUp.push(megabytes);
      await sleep(500);
    }
    const sorted = await stream.stop();
    const { replies, firstMeasured } = stream;
    // The service's share, on the database's clock: from the commit of the create to the commit of its chunk.
    const [{ p99: settledP99 }] = await db.query<{ p99: number }>(
      `SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM op.settled_at - op.created_at) * 1000) AS p99
         FROM batch.operation_states op WHERE op.id >= $1`,
      [String(firstMeasured)],
    );
    const watched = afterWarmUp.length >= 3 ? afterWarmUp : memory;
    const third = Math.max(1, Math.floor(watched.length / 3));
    const average = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const growth = average(watched.slice(-third)) - average(watched.slice(0, third));
    const at = `${options.rate}/s, interval ${options.interval} ms`;
    return [
      { name: `latency p50 create → notified (${at})`, value: percentile(sorted, 50), unit: 'ms' },
      {
        name: `latency p99 create → notified, first ${firstMinute} s after /health (${at})`,
        value: percentile(
          stream.early.sort((a, b) => a - b),
          99,
        ),
        unit: 'ms',
        target: options.interval === 100 ? 250 : options.interval + 250,
        max: true,
      },
      {
        name: `latency p99 create → notified (${at})`,
        value: percentile(sorted, 99),
        unit: 'ms',
        target: options.interval === 100 ? 250 : options.interval + 250,
        max: true,
      },
      {
        name: `  call → reply p99`,
        value: percentile(
          replies.sort((a, b) => a - b),
          99,
        ),
        unit: 'ms',
      },
      { name: `  created → settled p99 (database clock)`, value: settledP99, unit: 'ms' },
      {
        name: `memory peak RSS (${options.seconds} s at ${options.rate}/s)`,
        value: Math.max(...memory),
        unit: 'MB',
        target: 300,
        max: true,
      },
      {
        name: `memory growth after the first minute, last third vs first third`,
        value: growth,
        unit: 'MB',
        target: 25,
        max: true,
        note: 'should stay flat',
      },
    ];
  } finally {
    await service.stop();
  }
}
