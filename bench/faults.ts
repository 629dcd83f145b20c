import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import type { Figure } from './report';
import { fill } from './drain';
import { BenchService, npmStart } from './service';
import { dbClientConfig, sharedDatabaseUrl } from '../test/support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../test/support/test-database';

/** About as many workers killed at the injection point in a run of any size (its chunks: `operations` / 5). */
const KILLS = 8;

/**
 * The kill-between-commits fault run: `operations` inserts and as many increments for tables in another database
 * (BATCH_DATABASES, on the same server), in chunks of 10, drained by workers (`npm start`, role `worker`) that kill
 * themselves at random between a chunk's commit there and its settling in the queue (BATCH_TEST_KILL_AT, the fault
 * tests' injection point), each replaced by a new one until none is pending. Counted after from the target tables:
 * operations lost and applied twice (an insert's row is there once; the counters' sum is the increments').
 */
export async function benchFaults({ operations }: { operations: number }): Promise<Figure[]> {
  const billing = uniqueName('bench_billing');
  await createDatabase(billing);
  const target = new Client(dbClientConfig(billing));
  await target.connect();
  const service = new BenchService({
    BATCH_DATABASES: JSON.stringify({ billing: sharedDatabaseUrl(billing) }),
    BATCH_PROCESS_OPERATION_LIMIT: '10',
    BATCH_CHUNK_MAX_OPERATIONS: '10',
    BATCH_CHUNK_LEASE_MS: '1000',
  });
  const count = async (client: { query: Client['query'] }, sql: string) =>
    Number((await client.query<{ n: string }>(sql)).rows[0].n);
  try {
    await target.query(`CREATE TABLE events (id bigserial PRIMARY KEY, ref int NOT NULL);
                        CREATE TABLE counters (name text PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
                        INSERT INTO counters SELECT 'c' || g, 0 FROM generate_series(0, 9) g`);
    await service.start(['api']);
    const rpc = service.rpc();
    await fill(rpc, operations, (i) => ({ target: 'billing:events', type: 'insert', values: { ref: i } }));
    await fill(rpc, operations, (i) => ({
      target: 'billing:counters',
      type: 'increment',
      key: { name: `c${i % 10}` },
      values: { n: 1 },
    }));
    await rpc.close();

    const pending = () => service.db.count(`SELECT count(*) AS n FROM batch.operation_states WHERE status = 'PENDING'`);
    const chance = Math.min(0.1, (KILLS * 5) / operations);
    let kills = 0;
    while ((await pending()) > 0) {
      const worker = await npmStart({
        ...service.env,
        BATCH_ROLE: 'worker',
        BATCH_TEST_KILL_AT: `between-commits:${chance}`,
      }).catch(
        () => null, // killed before it answered /health
      );
      while (worker && !worker.exited() && (await pending()) > 0) await sleep(200);
      if (!worker || worker.exited()) kills += 1;
      await worker?.stop();
    }
    const [states] = await service.db.query<{ completed: string; other: string }>(
      `SELECT count(*) FILTER (WHERE status = 'COMPLETED') AS completed, count(*) FILTER (WHERE status <> 'COMPLETED') AS other
         FROM batch.operation_states`,
    );
    const rows = await count(target, 'SELECT count(*) AS n FROM events');
    const refs = await count(target, 'SELECT count(DISTINCT ref) AS n FROM events');
    const increments = await count(target, 'SELECT sum(n) AS n FROM counters');
    const chunks = await count(target, 'SELECT count(*) AS n FROM batch_ledger.applied_chunks');
    const lost = operations - refs + Math.max(0, operations - increments);
    const twice = rows - refs + Math.max(0, increments - operations);
    const note =
      `${2 * operations} operations in ${chunks} chunks for another database; ${Number(states.completed)} COMPLETED, ` +
      `${Number(states.other)} not`;
    return [
      { name: 'kill between commits: workers killed', value: kills, unit: 'kills', note },
      { name: 'kill between commits: operations lost', value: lost, unit: 'ops', target: 0, max: true },
      { name: 'kill between commits: applied twice', value: twice, unit: 'ops', target: 0, max: true },
    ];
  } finally {
    await service.stop();
    await target.end();
    await dropDatabase(billing);
  }
}
