import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { BatchError } from '../../src/services/batch-error';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { ChunkService } from '../../src/services/queue-views/chunk.service';
import { OperationService } from '../../src/services/ingest/operation.service';
import { createTestApp, TestApp } from '../support/app-context';
import { dbClientConfig } from '../support/shared-services';

describe("a client's executions (real PostgreSQL)", () => {
  let t: TestApp;
  let one: AuthenticatedClient;
  let two: AuthenticatedClient;
  let shared: string;
  let onlyOne: string;

  before(async () => {
    t = await createTestApp();
    await t.db.query(`CREATE TABLE public.items (id int PRIMARY KEY)`);
    one = await t.client('one');
    two = await t.client('two');
    const operations = t.get(OperationService);
    const insert = (id: number) => ({ target: 'items', type: 'insert' as const, values: { id } });
    await operations.createMany(one, [insert(1), insert(2)]);
    await operations.create(two, insert(3));
    shared = (await t.get(ChunkStep).execute()).chunkId!;
    await operations.create(one, insert(1)); // fails: a duplicate key, settled all the same
    onlyOne = (await t.get(ChunkStep).execute()).chunkId!;
  });
  after(() => t.close());

  it('are the executions that settled at least one of its operations, completed or failed', async () => {
    const executions = t.get(ChunkService);
    assert.deepEqual(
      (await executions.list(one)).items.map((e) => e.id),
      [onlyOne, shared],
    );
    assert.deepEqual(
      (await executions.list(two)).items.map((e) => e.id),
      [shared],
    );
    assert.equal((await executions.get(one, onlyOne)).id, onlyOne);
    await assert.rejects(executions.get(two, onlyOne), (e: BatchError) => e.code === 'NOT_FOUND');
  });

  it('are found without reading the operations table', async () => {
    const locker = new Client(dbClientConfig(t.db.name));
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE batch.operations IN ACCESS EXCLUSIVE MODE');
      const executions = t.get(ChunkService);
      const read = Promise.all([executions.list(one), executions.get(two, shared)]);
      const outcome = await Promise.race([
        read.then(() => 'read'),
        sleep(5000).then(() => 'blocked on batch.operations'),
      ]);
      assert.equal(outcome, 'read');
    } finally {
      await locker.end();
    }
  });
});
