import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { CLAIM_TEXT_SQL, TARGETS_SQL } from '../../src/services/engine/chunk-claimer.service';
import { Database } from '../../src/services/storage/database';
import { OperationService } from '../../src/services/ingest/operation.service';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { StatsService } from '../../src/services/queue-views/stats.service';
import { createTestApp, TestApp } from '../support/app-context';

describe("queue health: a chunk reads the queue's tables through their indexes (real PostgreSQL)", () => {
  let t: TestApp;

  before(async () => {
    t = await createTestApp({ BATCH_PROCESS_OPERATION_LIMIT: '1000' });
    await t.db.query(`CREATE TABLE public.events (id int PRIMARY KEY)`);
  });
  after(() => t.close());

  /**
   * Sequential scans of the tables that grow with what was settled, once PostgreSQL has published at least `settled`
   * outcome rows and runs inserted. (The streams and the deferred set are tiny here, where a scan is the better plan;
   * the next test claims with a million operations deferred.)
   */
  async function seqScans(settled: number): Promise<Record<string, number>> {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(100)) {
      const rows = await t.db.query<{ relname: string; seq_scan: string; n_tup_ins: string }>(
        `SELECT relname, seq_scan, n_tup_ins FROM pg_stat_user_tables
          WHERE schemaname = 'batch' AND relname IN ('operations', 'outcomes', 'settled_runs')`,
      );
      const inserted = (table: string) => Number(rows.find((r) => r.relname === table)?.n_tup_ins);
      if (inserted('outcomes') + inserted('settled_runs') >= settled)
        return Object.fromEntries(rows.map((r) => [r.relname, Number(r.seq_scan)]));
    }
    throw new Error('statistics were not published');
  }

  it('claims and settles a chunk without scanning the settled rows', async () => {
    const client = await t.client('health');
    // 100,000 settled with an outcome row each, and 100,000 in runs of 1,000: their stream taken past them
    await t.db.query(
      `WITH settled AS (
         INSERT INTO batch.operations (client_id, target, type, row_values)
         SELECT $1, 'public.events', 'insert', jsonb_build_object('id', -g) FROM generate_series(1, 200000) g RETURNING id, client_id, target),
       numbered AS (SELECT id, client_id, target, row_number() OVER (ORDER BY id) - 1 AS n FROM settled),
       rows AS (
         INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, rows_affected, settled_at)
         SELECT id, client_id, target, 'COMPLETED', 1, 1, now() FROM numbered WHERE n < 100000),
       runs AS (
         INSERT INTO batch.settled_runs (first_id, last_id, chunk_id, settled_at)
         SELECT min(id), max(id), 0, now() FROM numbered WHERE n >= 100000 GROUP BY n / 1000)
       INSERT INTO batch.streams (target, priority, taken_through) SELECT 'public.events', 0, max(id) FROM settled`,
      [client.id],
    );
    await t.get(OperationService).createMany(
      client,
      Array.from({ length: 1000 }, (_, i) => ({ target: 'events', type: 'insert' as const, values: { id: i } })),
    );
    await t.db.query(`ANALYZE batch.operations, batch.streams, batch.deferred, batch.outcomes, batch.settled_runs`);
    const before = await seqScans(100_000 + 100);

    assert.equal((await t.get(ChunkStep).execute()).read, 1000);

    assert.deepEqual(
      await seqScans(100_000 + 100 + 1),
      before,
      "sequential scans of the queue's tables during the chunk",
    );
  });
});

describe('queue health: what the claim reads does not grow with the backlog or with scheduled operations (real PostgreSQL)', () => {
  let t: TestApp;
  let client: string;

  before(async () => {
    t = await createTestApp();
    client = (await t.client('backlog')).id;
  });
  after(() => t.close());

  /**
   * Operations straight into the tables, as ingest stores them: `count` on `target`, in its stream, or `scheduled` a
   * day ahead in the deferred set.
   */
  async function store(target: string, count: number, scheduled = false): Promise<void> {
    await t.db.query(
      `WITH stored AS (
         INSERT INTO batch.operations (client_id, target, type, row_values, not_before, shape, identity)
         SELECT $1, $2, 'insert', v, CASE WHEN $4 THEN now() + interval '1 day' END, batch.shape_of('insert', v, NULL, NULL), ''
           FROM generate_series(1, $3) g, jsonb_build_object('id', g) v
         RETURNING id, client_id, target, priority, not_before, shape),
       deferred AS (
         INSERT INTO batch.deferred (id, client_id, target, priority, due_at, shape, identity)
         SELECT id, client_id, target, priority, not_before, shape, '' FROM stored WHERE not_before IS NOT NULL)
       INSERT INTO batch.streams (target, priority) VALUES ($2, 0) ON CONFLICT DO NOTHING`,
      [client, target, count, scheduled],
    );
    await t.db.query(`ANALYZE batch.operations, batch.deferred`);
  }

  /** Shared buffers the two claim statements touch to claim up to 1,000 operations (rolled back, so nothing changes). */
  async function claimBuffers(): Promise<{ buffers: number; claimed: number }> {
    const connection = await t.get(Database).pool.connect();
    try {
      await connection.query('BEGIN');
      const plan = async (sql: string, params?: unknown[]) =>
        (await connection.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`, params)).rows[0]['QUERY PLAN'][0];
      const targets = await plan(TARGETS_SQL);
      const heads = (await connection.query(TARGETS_SQL)).rows as { horizon: string; target: string }[];
      const params = [
        heads.map((h) => h.target),
        heads.map(() => 1000),
        heads[0]?.horizon ?? '0',
        1000,
        heads.map(() => null),
        2 ** 40,
      ];
      const claim = await plan(CLAIM_TEXT_SQL, params);
      const [{ lines }] = (await connection.query(CLAIM_TEXT_SQL, params)).rows as { lines: string | null }[];
      // each line's second field: how many operations it stands for (one, or a run's)
      const claimed = (lines?.split('\n') ?? []).reduce((sum, line) => sum + Number(line.split('\t')[1]), 0);
      const buffers = (p: { Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }) =>
        p.Plan['Shared Hit Blocks'] + p.Plan['Shared Read Blocks'];
      return { buffers: buffers(targets) + buffers(claim), claimed };
    } finally {
      await connection.query('ROLLBACK');
      connection.release();
    }
  }

  it('touches a few buffers per claimed operation, with or without 200,000 due on another target and 1,000,000 scheduled', async () => {
    await store('public.due', 1000);
    await store('public.backlog', 200_000);
    const backlog = await claimBuffers();
    await store('public.later', 1_000_000, true);
    const scheduled = await claimBuffers();
    for (const { claimed, buffers } of [backlog, scheduled]) {
      assert.equal(claimed, 1000);
      assert.ok(
        buffers < 2 * claimed,
        `${buffers} buffers to claim ${claimed}: a walk of the index, not of the backlog`,
      );
    }
    // a million scheduled may deepen an index by a level, never add a read per operation
    assert.ok(
      scheduled.buffers <= backlog.buffers + scheduled.claimed / 10,
      `${scheduled.buffers} buffers with a million scheduled, ${backlog.buffers} without`,
    );
  });
});

describe("queue health: what a client reads of the queue does not grow with other clients' backlogs (real PostgreSQL)", () => {
  let t: TestApp;
  let own: AuthenticatedClient;
  let other: AuthenticatedClient;

  before(async () => {
    t = await createTestApp();
    own = await t.client('own');
    other = await t.client('other');
    await t.db.query(`CREATE TABLE public.shared (id int PRIMARY KEY)`);
    await t.db.query(`CREATE TABLE public.apart (id int PRIMARY KEY)`);
    const operations = t.get(OperationService);
    // the client's own: some settled, some pending on the same target, one failed, one scheduled
    await operations.createMany(
      own,
      [1, 2, 2].map((id) => ({ target: 'shared', type: 'insert' as const, values: { id } })),
    );
    await t.get(ChunkStep).execute();
    await operations.create(own, {
      target: 'apart',
      type: 'insert',
      values: { id: 1 },
      notBefore: new Date(Date.now() + 86_400_000).toISOString(),
    });
  });
  after(() => t.close());

  /** `count` pending operations of the other client on public.shared, in its stream, as ingest stores them. */
  async function backlog(count: number): Promise<void> {
    await t.db.query(
      `INSERT INTO batch.operations (client_id, target, type, row_values, shape, identity)
       SELECT $1, 'public.shared', 'insert', v, batch.shape_of('insert', v, NULL, NULL), ''
         FROM generate_series(1000, 999 + $2) g, jsonb_build_object('id', g) v`,
      [other.id, count],
    );
    await t.db.query(`ANALYZE batch.operations, batch.deferred, batch.outcomes, batch.operation_counts`);
  }

  /** Shared buffers a statement touches, run as the service runs it (its text and parameters). */
  async function buffers(sql: string, params: unknown[]): Promise<number> {
    const [
      {
        'QUERY PLAN': [plan],
      },
    ] = await t.db.query<{
      'QUERY PLAN': { Plan: { 'Shared Hit Blocks': number; 'Shared Read Blocks': number } }[];
    }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`, params);
    return plan.Plan['Shared Hit Blocks'] + plan.Plan['Shared Read Blocks'];
  }

  /** What the client's stats and its listings of each status read, each as the service sends it. */
  async function reads(): Promise<Record<string, number>> {
    const database = t.get(Database);
    const seen: Record<string, number> = {};
    const query = database.query.bind(database);
    const record = (name: string) => {
      database.query = (async (sql: string | { text: string }, params?: unknown[]) => {
        const text = typeof sql === 'string' ? sql : sql.text;
        if (params?.[0] === own.id) seen[`${name}: ${text.slice(0, 60)}`] = await buffers(text, params);
        return query(sql as string, params);
      }) as Database['query'];
    };
    try {
      record('stats');
      const stats = await t.get(StatsService).queue(own);
      assert.equal(stats.byStatus.PENDING, 1);
      for (const status of ['PENDING', 'COMPLETED', 'FAILED', 'CANCELLED', undefined] as const) {
        record(`list ${status ?? 'ANY'}`);
        await t.get(OperationService).list(own, { status, limit: 50 });
      }
    } finally {
      database.query = query;
    }
    return seen;
  }

  it("reads as much for a client's stats and listings with 300,000 of another client's operations pending as without", async () => {
    const without = await reads();
    await backlog(300_000);
    const withBacklog = await reads();
    assert.deepEqual(Object.keys(withBacklog).sort(), Object.keys(without).sort());
    for (const [statement, read] of Object.entries(withBacklog))
      assert.ok(
        read <= without[statement] + 10 && read < 100,
        `${statement}: ${read} buffers, ${without[statement]} without`,
      );
    const listed = await t.get(OperationService).list(own, { status: 'PENDING', limit: 50 });
    assert.equal(listed.items.length, 1);
  });
});
