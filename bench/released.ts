import { Client } from 'pg';
import { checkpoint, fill, handWrittenRate, seed } from './drain';
import { median, type Figure } from './report';
import { BenchService } from './service';
import { operation, TABLE, Type } from './target';
import { dbClientConfig } from '../test/support/shared-services';

type Keyed = Exclude<Type, 'insert'>;
const SEQUENCE: Keyed[] = ['update', 'increment', 'delete', 'upsert'];

/**
 * What the table shows once every operation of a backlog of `count` applied, as one boolean query of what it expects
 * ($1), given how many rows the operations name (`named`).
 */
const APPLIED: Record<Keyed, { sql: string; expected: (count: number, named: number) => number }> = {
  update: {
    sql: `SELECT count(*) FILTER (WHERE note LIKE 'updated %') = $1 AS done FROM public.bench`,
    expected: (c, named) => named,
  },
  increment: { sql: `SELECT sum(qty) = $1 AS done FROM public.bench`, expected: (c) => 2 * c },
  delete: { sql: `SELECT count(*) = $1 AS done FROM public.bench`, expected: (c, named) => c - named },
  upsert: {
    sql: `SELECT count(*) FILTER (WHERE note LIKE 'note %') = $1 AS done FROM public.bench`,
    expected: (c, named) => named,
  },
};

/** Rows 1…`rows` each once, in order: the check's shape. */
const inOrder = (i: number) => i;
/**
 * A row of 1…`rows` picked at random for each operation, the same in every run (a multiplicative hash): about a third
 * of the operations name a row that an earlier one named, so that a delete finds its row gone.
 */
export const atRandom = (rows: number) => (i: number) => 1 + (((i * 2654435761) % 2 ** 32) % rows);

/**
 * One backlog of `type` built up behind a lock and released at once: the target (holding `count` rows) is locked by
 * another transaction while `count` operations are sent with createOperations (1,000 a message), the worker waiting
 * on the lock; the lock is released, and the drain is timed from the release to the commit of the chunk that settled
 * the last operation (the table then shows every change: checked). Operations per second.
 */
export async function releasedDrain(service: BenchService, type: Keyed, count: number, key = inOrder): Promise<number> {
  const { db } = service;
  await db.query(`DROP TABLE IF EXISTS public.bench; CREATE TABLE public.bench ${TABLE}`);
  await seed(db, 'public.bench', count);
  const [{ last }] = await db.query<{ last: string }>(`SELECT coalesce(max(id), 0) AS last FROM batch.chunks`);
  const holder = new Client(dbClientConfig(service.env.DB_NAME));
  await holder.connect();
  const rpc = service.rpc();
  // the caller's notifications kept in its queue meanwhile, as a caller's are, and received after
  const held = await service.heldNotifications();
  try {
    await holder.query(`BEGIN; LOCK TABLE public.bench IN ACCESS EXCLUSIVE MODE`);
    await fill(rpc, count, (i) => operation(type, key(i)));
    await checkpoint(db);
    const released = Date.now();
    await holder.query('COMMIT');
    for (;;) {
      const [state] = await db.query<{ settled: number; ended: Date | null }>(
        `SELECT coalesce(sum(read_count), 0)::int AS settled, max(ended_at) AS ended
           FROM batch.chunks WHERE id > $1 AND status = 'COMPLETED'`,
        [last],
      );
      if (state.settled >= count) {
        const named = new Set(Array.from({ length: count }, (_, i) => key(i + 1))).size;
        const { sql, expected } = APPLIED[type];
        const [{ done }] = await db.query<{ done: boolean }>(sql, [expected(count, named)]);
        if (!done) throw new Error(`${type}: every operation settled, the table does not show it`);
        await held.receive(count);
        return count / ((state.ended!.getTime() - released) / 1000);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await rpc.close();
    await holder.end();
  }
}

/** Each run's drain and its baseline, in operations per second. */
type Runs = { value: number; baseline: number }[];

/**
 * Backlogs released at once: one service (`npm start`, one process, BATCH_LOCK_TIMEOUT=0 so that its worker waits on
 * the lock), each type in turn (update, increment, delete, upsert) built up behind a lock and released (releasedDrain),
 * then deletes of rows picked at random (some twice), `runs` times over, each run a service started anew on the
 * database the runs before left; then updates set aside: a service on the defaults, whose worker gives up on the
 * locked target after the lock timeout (1 s) and leaves it alone. Each against its statement written by hand
 * (HAND_WRITTEN) in the same run. A figure per series: the median, and each run's ratio (min / median / max), every one
 * of which is to meet the target.
 */
export async function benchReleased(options: { rows: number; runs: number }): Promise<Figure[]> {
  const size = options.rows.toLocaleString('en');
  const waited = new Map<Keyed, Runs>(SEQUENCE.map((type) => [type, []]));
  const deletedAtRandom: Runs = [];
  await withService({ BATCH_LOCK_TIMEOUT: '0' }, async (service) => {
    for (let run = 0; run < options.runs; run++) {
      if (run > 0) await service.startRole('all');
      for (const type of SEQUENCE) waited.get(type)!.push(await measured(service, type, options.rows));
      deletedAtRandom.push(await measured(service, 'delete', options.rows, atRandom(options.rows)));
      await service.stopRole('all');
    }
  });
  const setAside: Runs = [];
  await withService({}, async (service) => {
    for (let run = 0; run < options.runs; run++) setAside.push(await measured(service, 'update', options.rows));
  });
  return [
    ...SEQUENCE.map((type) => figure(`${type} backlog of ${size} released at once`, type, waited.get(type)!)),
    figure(`delete backlog of ${size} released at once, rows picked at random`, 'delete', deletedAtRandom),
    figure(`update backlog of ${size} set aside behind a lock (lock timeout 1 s), released`, 'update', setAside),
  ];
}

async function withService(settings: Record<string, string>, work: (service: BenchService) => Promise<void>) {
  const service = new BenchService(settings);
  try {
    await service.start(['all']);
    await work(service);
  } finally {
    await service.stop();
  }
}

async function measured(service: BenchService, type: Keyed, rows: number, key = inOrder): Promise<Runs[number]> {
  const value = await releasedDrain(service, type, rows, key);
  return { value, baseline: await handWrittenRate(service.env.DB_NAME, type, rows, key) };
}

function figure(name: string, type: Keyed, runs: Runs): Figure {
  return {
    name,
    value: median(runs.map((r) => r.value)),
    unit: 'ops/s',
    baseline: { name: `${type} by hand, arrays, per 1,000`, value: median(runs.map((r) => r.baseline)) },
    target: 0.6,
    runs: runs.map((r) => r.value / r.baseline),
    note: `each run: ${runs.map((r) => `${Math.round(r.value / 1000)}k vs ${Math.round(r.baseline / 1000)}k`).join(', ')} ops/s`,
  };
}
