import type { PoolClient } from 'pg';
import { ItemReader } from '../src/interfaces/chunk.interfaces';
import { Database } from '../src/services/database';
import { createTestApp } from '../test/support/app-context';
import type { Figure } from './report';

/**
 * Queue health: the cost of claiming a chunk of 1,000 pending operations with no settled ones in the table,
 * and again with `settled` of them (as after millions of operations, before retention catches up).
 */
export async function benchQueue(options: { settled: number; chunk: number }): Promise<Figure[]> {
  const t = await createTestApp();
  try {
    const client = await t.client('queue');
    await t.db.query(`CREATE TABLE public.bench (id int PRIMARY KEY)`);
    const reader = t.app.get<ItemReader>(ItemReader);
    const db = t.get(Database);
    const enqueue = (status: string, count: number) =>
      t.db.query(
        `INSERT INTO batch.operations (client_id, target, type, row_values, status, settled_at)
         SELECT $1, 'public.bench', 'insert', jsonb_build_object('id', g), $2, CASE WHEN $2 = 'PENDING' THEN NULL ELSE now() END
           FROM generate_series(1, $3::int) g`,
        [client.id, status, count],
      );
    const claimMs = async () => {
      const samples: number[] = [];
      for (let i = 0; i < 101; i++) {
        const started = process.hrtime.bigint();
        await db.transaction(async (tx: PoolClient) => {
          const claimed = await reader.read(tx, options.chunk);
          if (claimed.length !== options.chunk) throw new Error(`claimed ${claimed.length}`);
          throw Object.assign(new Error('rollback'), { rollback: true });
        }).catch((error: { rollback?: boolean }) => {
          if (!error.rollback) throw error;
        });
        samples.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
      return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)];
    };
    await enqueue('PENDING', options.chunk);
    await t.db.query('VACUUM ANALYZE batch.operations');
    const empty = await claimMs();
    await enqueue('COMPLETED', options.settled);
    await t.db.query('VACUUM ANALYZE batch.operations');
    const full = await claimMs();
    return [
      { name: `claim ${options.chunk} with ${options.settled.toLocaleString('en-US')} settled rows (median)`, value: full, unit: 'ms', baseline: { name: 'no settled rows', value: empty }, target: 1.25, max: true },
    ];
  } finally {
    await t.close();
  }
}
