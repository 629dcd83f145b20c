import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { Database } from '../../src/services/storage/database';
import { createTestApp, TestApp } from '../support/app-context';

describe('what a process has ready before it says it is ready (real PostgreSQL)', () => {
  let first: TestApp;

  before(async () => {
    first = await createTestApp({ BATCH_ROLE: 'api' });
    await first.db.query(`CREATE TABLE public.preloaded (id int PRIMARY KEY, note text)`);
  });
  after(() => first.close());

  it('has every connection of its database pool open and idle', async () => {
    const started = await first.withConfig({ BATCH_ROLE: 'api', DB_POOL_SIZE: '4' });
    try {
      const { pool } = started.get(Database);
      assert.deepEqual([pool.totalCount, pool.idleCount], [4, 4]);
      await Promise.all(Array.from({ length: 4 }, () => started.get(Database).query('SELECT pg_sleep(0.01)')));
      assert.equal(pool.totalCount, 4, 'the work found its connections open');
    } finally {
      await started.close();
    }
  });

  it("opens its pool before the worker's first chunk", async () => {
    const execute = ChunkStep.prototype.execute;
    let openAtFirstChunk: number | null = null;
    ChunkStep.prototype.execute = function (this: ChunkStep, ...args: Parameters<ChunkStep['execute']>) {
      openAtFirstChunk ??= (this as unknown as { db: Database }).db.pool.totalCount;
      return execute.apply(this, args);
    };
    try {
      const started = await first.withConfig({ BATCH_ROLE: 'worker', DB_POOL_SIZE: '4' });
      await started.close();
    } finally {
      ChunkStep.prototype.execute = execute;
    }
    assert.equal(openAtFirstChunk, 4);
  });

  it('knows the tables that existed at start without reading the database again', async () => {
    const started = await first.withConfig({ BATCH_ROLE: 'api' }); // a process started after the table was made
    try {
      const db = started.get(Database);
      const query = db.query.bind(db);
      let queries = 0;
      db.query = ((...args: Parameters<Database['query']>) => {
        queries += 1;
        return query(...args);
      }) as Database['query'];
      const table = await started.get(CatalogService).find('preloaded');
      assert.equal(table?.name, 'public.preloaded');
      assert.deepEqual([...table.columns.keys()].sort(), ['id', 'note']);
      assert.equal(queries, 0, 'the first lookup waited for no load');
    } finally {
      await started.close();
    }
  });

  it('still finds a table made after start', async () => {
    await first.db.query(`CREATE TABLE public.made_later (id int PRIMARY KEY)`);
    const table = await first.get(CatalogService).find('made_later');
    assert.equal(table?.name, 'public.made_later');
  });
});
