import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import { StatsService } from '../../src/services/queue-views/stats.service';
import { createTestApp, TestApp } from '../support/app-context';

describe('queue stats (real PostgreSQL)', () => {
  let t: TestApp;

  before(async () => {
    t = await createTestApp();
    await t.db.query(`CREATE TABLE public.a (id int PRIMARY KEY)`);
    await t.db.query(`CREATE TABLE public.b (id int PRIMARY KEY)`);
  });
  after(() => t.close());

  it('counts by status and target, throughput per minute, queue age and outbox backlog; a client sees its own', async () => {
    const operations = t.get(OperationService);
    const one = await t.client('one');
    const two = await t.client('two');
    await operations.createMany(
      one,
      [1, 2, 2].map((id) => ({ target: 'a', type: 'insert' as const, values: { id } })),
    );
    await t.get(ChunkStep).execute();
    await operations.create(one, { target: 'b', type: 'insert', values: { id: 1 } });
    await operations.create(two, { target: 'b', type: 'insert', values: { id: 2 } });
    // The oldest due one counts, whatever its priority (another client's older one at a lower priority), not one
    // that is not yet due however old. Ids grow in creation order, so ages do too.
    await operations.create(one, { target: 'b', type: 'insert', values: { id: 3 }, priority: 5 });
    await operations.create(two, { target: 'b', type: 'insert', values: { id: 4 }, priority: -1 });
    await operations.create(one, {
      target: 'b',
      type: 'insert',
      values: { id: 5 },
      priority: -3,
      notBefore: new Date(Date.now() + 3_600_000).toISOString(),
    });
    const age = (id: number, seconds: number) =>
      t.db.query(
        `UPDATE batch.operations SET created_at = now() - $2 * interval '1 second' WHERE target = 'public.b' AND row_values->>'id' = $1`,
        [String(id), seconds],
      );
    await age(1, 180);
    await age(2, 150);
    await age(3, 120);
    await age(4, 90);
    await age(5, 300);

    const all = await t.get(StatsService).queue(null);
    assert.deepEqual(all.byStatus, { PENDING: 5, COMPLETED: 2, FAILED: 1, CANCELLED: 0 });
    assert.deepEqual(all.byTarget, [
      { target: 'public.a', status: 'COMPLETED', count: 2 },
      { target: 'public.a', status: 'FAILED', count: 1 },
      { target: 'public.b', status: 'PENDING', count: 5 },
    ]);
    assert.ok(
      all.oldestPendingAgeSeconds >= 180 && all.oldestPendingAgeSeconds < 210,
      `${all.oldestPendingAgeSeconds}`,
    );
    assert.equal(all.throughput.length, 1);
    assert.deepEqual([all.throughput[0].completed, all.throughput[0].failed], [2, 1]);
    assert.equal(all.outboxBacklog, 1);

    const own = await t.get(StatsService).queue(two);
    assert.deepEqual(own.byStatus, { PENDING: 2, COMPLETED: 0, FAILED: 0, CANCELLED: 0 });
    assert.ok(
      own.oldestPendingAgeSeconds >= 150 && own.oldestPendingAgeSeconds < 180,
      `${own.oldestPendingAgeSeconds}`,
    );
    await t.db.query(`DELETE FROM batch.operations WHERE target = 'public.b' AND row_values->>'id' = '2'`);
    const lower = await t.get(StatsService).queue(two);
    assert.ok(lower.oldestPendingAgeSeconds >= 90 && lower.oldestPendingAgeSeconds < 120, 'at a lower priority');
    assert.equal(own.outboxBacklog, 0);
    const first = await t.get(StatsService).queue(one);
    assert.ok(
      first.oldestPendingAgeSeconds >= 180 && first.oldestPendingAgeSeconds < 210,
      `${first.oldestPendingAgeSeconds}`,
    );
  });
});
