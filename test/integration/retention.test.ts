import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IOperationsSettledEvent } from '../../src/interfaces/operation.interfaces';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import { RetentionService } from '../../src/services/storage/retention.service';
import { createTestApp, TestApp } from '../support/app-context';

describe('retention (real PostgreSQL)', () => {
  let t: TestApp;

  before(async () => {
    t = await createTestApp({ BATCH_RETENTION_HOURS: '24' });
    await t.db.query(`CREATE TABLE public.events (id int PRIMARY KEY)`);
  });
  after(() => t.close());

  /** Settled a day ago (25 hours): the outcome rows and the runs of the operations whose ids match `ids`. */
  async function ageSettled(ids: string): Promise<void> {
    await t.db.query(`UPDATE batch.outcomes SET settled_at = now() - interval '25 hours' WHERE operation_id ${ids}`);
    await t.db.query(`UPDATE batch.settled_runs SET settled_at = now() - interval '25 hours' WHERE last_id ${ids}`);
  }

  it('deletes settled operations, sent outbox rows and executions past retention, in batches, and nothing else', async () => {
    const client = await t.client('retention');
    const operations = t.get(OperationService);
    for (let from = 0; from < 2500; from += 500) {
      await operations.createMany(
        client,
        Array.from({ length: 500 }, (_, i) => ({
          target: 'events',
          type: 'insert' as const,
          values: { id: from + i },
        })),
      );
    }
    await operations.create(client, { target: 'events', type: 'insert', values: { id: 0 } }); // fails: a row of its own
    await t.get(ChunkStep).execute(5000);
    await t.db.query(`UPDATE batch.outbox SET sent_at = now()`);
    const pending = await operations.create(client, { target: 'events', type: 'insert', values: { id: -1 } });
    const recent = await operations.create(client, { target: 'events', type: 'insert', values: { id: -2 } });
    await operations.cancel(client, recent.id);
    // Age everything but the two operations created last (and their requests).
    await t.db.query(`UPDATE batch.operations SET created_at = now() - interval '26 hours' WHERE id < $1`, [
      pending.id,
    ]);
    await t.db.query(
      `UPDATE batch.requests SET created_at = now() - interval '26 hours'
        WHERE id < (SELECT request_ref FROM batch.operations WHERE id = $1)`,
      [pending.id],
    );
    await ageSettled(`< ${pending.id}`);
    await t.db.query(`UPDATE batch.outbox SET sent_at = now() - interval '25 hours'`);
    await t.db.query(`UPDATE batch.chunks SET ended_at = now() - interval '25 hours'`);

    const deleted = await t.get(RetentionService).purge();
    assert.deepEqual(deleted, { operations: 2501, requests: 6, outbox: 1, executions: 1, importFiles: 0, ledgers: 0 });
    const left = await t.db.query<{ id: string; status: string }>(
      'SELECT id, status FROM batch.operation_states ORDER BY id',
    );
    assert.deepEqual(left, [
      { id: pending.id, status: 'PENDING' },
      { id: recent.id, status: 'CANCELLED' },
    ]);
    assert.equal((await t.db.query('SELECT 1 FROM batch.chunk_steps')).length, 0, 'steps go with their execution');
    assert.equal(
      Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM public.events'))[0].n),
      2500,
      'targets are never touched',
    );
  });

  it('leaves a notification not sent yet whole when its operations go', async () => {
    const client = await t.client('retention-unsent');
    const operations = t.get(OperationService);
    const created = await operations.createMany(
      client,
      [1, 2, 1].map((i) => ({ target: 'events', type: 'insert' as const, values: { id: 10_000 + i } })),
    );
    await t.get(ChunkStep).execute(100);
    const ids = created.map((op) => op.id);
    await t.db.query(`UPDATE batch.operations SET created_at = now() - interval '26 hours'`);
    await ageSettled(`BETWEEN ${ids[0]} AND ${ids[2]}`);
    // written with the chunk that settled them: as old as they are
    await t.db.query(`UPDATE batch.outbox SET created_at = now() - interval '25 hours' WHERE sent_at IS NULL`);

    assert.deepEqual(await t.get(RetentionService).purge(), {
      operations: 3,
      requests: 0,
      outbox: 0,
      executions: 0,
      importFiles: 0,
      ledgers: 0,
    });
    const [{ payload }] = await t.db.query<{ payload: string }>(
      `SELECT payload FROM batch.outbox WHERE sent_at IS NULL ORDER BY id DESC LIMIT 1`,
    );
    assert.deepEqual(
      (JSON.parse(payload) as IOperationsSettledEvent).operations.map((op) => [op.id, op.status]),
      [
        [ids[0], 'COMPLETED'],
        [ids[1], 'COMPLETED'],
        [ids[2], 'FAILED'],
      ],
      'the relay (down for a day) still has all of it to send',
    );
  });

  it('vacuums the queue tables when, and only when, the server runs without autovacuum', async () => {
    const client = await t.client('vacuum');
    const operations = t.get(OperationService);
    await operations.createMany(
      client,
      Array.from({ length: 200 }, (_, i) => ({
        target: 'events',
        type: 'insert' as const,
        values: { id: 10_000 + i },
      })),
    );
    await t.get(ChunkStep).execute(); // settling leaves a dead row version per operation
    const [{ autovacuum }] = await t.db.query<{ autovacuum: string }>(
      `SELECT current_setting('autovacuum') AS autovacuum`,
    );

    const vacuumed = await t.get(RetentionService).vacuumWithoutAutovacuum();

    assert.equal(vacuumed, autovacuum === 'off');
    const [stats] = await t.db.query<{ vacuums: string }>(
      `SELECT pg_stat_get_vacuum_count('batch.operations'::regclass) AS vacuums`,
    );
    assert.equal(Number(stats.vacuums) > 0, vacuumed, `vacuum count ${stats.vacuums} with autovacuum ${autovacuum}`);
  });
});
