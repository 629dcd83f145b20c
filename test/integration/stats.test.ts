import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChunkStep } from '../../src/services/chunk-step.service';
import { OperationService } from '../../src/services/operation.service';
import { StatsService } from '../../src/services/stats.service';
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
    await operations.createMany(one, [1, 2, 2].map((id) => ({ target: 'a', type: 'insert' as const, values: { id } })));
    await t.get(ChunkStep).execute();
    await operations.create(one, { target: 'b', type: 'insert', values: { id: 1 } });
    await operations.create(two, { target: 'b', type: 'insert', values: { id: 2 } });
    await t.db.query(`UPDATE batch.operations SET created_at = now() - interval '90 seconds' WHERE status = 'PENDING' AND target = 'public.b' AND row_values->>'id' = '1'`);

    const all = await t.get(StatsService).queue(null);
    assert.deepEqual(all.byStatus, { PENDING: 2, COMPLETED: 2, FAILED: 1, CANCELLED: 0 });
    assert.deepEqual(all.byTarget, [
      { target: 'public.a', status: 'COMPLETED', count: 2 },
      { target: 'public.a', status: 'FAILED', count: 1 },
      { target: 'public.b', status: 'PENDING', count: 2 },
    ]);
    assert.ok(all.oldestPendingAgeSeconds >= 90 && all.oldestPendingAgeSeconds < 120);
    assert.equal(all.throughput.length, 1);
    assert.deepEqual([all.throughput[0].completed, all.throughput[0].failed], [2, 1]);
    assert.equal(all.outboxBacklog, 1);

    const own = await t.get(StatsService).queue(two);
    assert.deepEqual(own.byStatus, { PENDING: 1, COMPLETED: 0, FAILED: 0, CANCELLED: 0 });
    assert.equal(own.outboxBacklog, 0);
  });
});
