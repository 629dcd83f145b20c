import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { clientConfig } from '../../src/services/storage/pg-client';
import { INGEST_LOCK } from '../../src/services/storage/advisory-locks';
import { OperationService } from '../../src/services/ingest/operation.service';
import { createTestApp, TestApp } from '../support/app-context';

/**
 * Ids are drawn before their insert commits. The id horizon keeps a chunk from applying an operation before one
 * with a smaller id on the same target whose insert commits late: ingest holds the ingest lock (shared) from before
 * it draws ids until it commits, and the reader waits for every such holder before it claims.
 */
describe('ingest and the id horizon (real PostgreSQL)', () => {
  let t: TestApp;
  let operations: OperationService;
  let client: AuthenticatedClient;
  let other: Client;

  before(async () => {
    t = await createTestApp();
    operations = t.get(OperationService);
    client = await t.client('horizon');
    await t.db.query(`CREATE TABLE public.counters (id int PRIMARY KEY, value int NOT NULL)`);
    other = new Client(clientConfig(t.db.config.db));
    await other.connect();
  });
  after(async () => {
    await other.end();
    await t.close();
  });

  const lastId = async () =>
    (await t.db.query<{ id: string }>('SELECT last_value AS id FROM batch.operations_id_seq'))[0].id;

  it('a create takes the ingest lock before it draws an id', async () => {
    await operations.create(client, { target: 'counters', type: 'insert', values: { id: 0, value: 0 } }); // the sequence has been used
    await other.query('SELECT pg_advisory_lock($1)', [INGEST_LOCK]);
    const before = await lastId();
    const created = operations.create(client, { target: 'counters', type: 'insert', values: { id: 1, value: 0 } });
    await sleep(300);
    assert.equal(await lastId(), before, 'no id is drawn while the lock is held exclusively');
    await other.query('SELECT pg_advisory_unlock($1)', [INGEST_LOCK]);
    const { id } = await created;
    assert.ok(BigInt(id) > BigInt(before));
    await t.get(ChunkStep).execute();
  });

  it('a chunk waits for an insert that drew a smaller id and commits late, then applies both in id order', async () => {
    // A create in flight: it holds the lock and has drawn its id, but has not committed.
    await other.query('BEGIN');
    await other.query('SELECT pg_advisory_xact_lock_shared($1)', [INGEST_LOCK]);
    const [{ id: early }] = (
      await other.query<{ id: string }>(
        `INSERT INTO batch.operations (client_id, target, type, row_values, row_key, shape, identity)
         SELECT $1, 'public.counters', 'update', v, k, batch.shape_of('update', v, k, NULL), ''
           FROM (SELECT '{"value": 1}'::jsonb AS v, '{"id": 1}'::jsonb AS k) input RETURNING id`,
        [client.id],
      )
    ).rows;
    const late = await operations.create(client, {
      target: 'counters',
      type: 'update',
      key: { id: 1 },
      values: { value: 2 },
    });
    assert.ok(BigInt(late.id) > BigInt(early));

    let settled = false;
    const chunk = t
      .get(ChunkStep)
      .execute()
      .finally(() => (settled = true));
    await sleep(300);
    assert.equal(settled, false, 'the chunk waits at the horizon');
    await other.query('COMMIT');
    assert.equal((await chunk).read, 2);

    const rows = await t.db.query<{ id: string; status: string }>(
      'SELECT id, status FROM batch.operation_states WHERE id = ANY($1::bigint[]) ORDER BY id',
      [[early, late.id]],
    );
    assert.deepEqual(
      rows.map((r) => r.status),
      ['COMPLETED', 'COMPLETED'],
    );
    assert.deepEqual(
      await t.db.query('SELECT value FROM public.counters WHERE id = 1'),
      [{ value: 2 }],
      'the larger id is applied last',
    );
  });
});
