import amqplib from 'amqplib';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { RelayLoop, unsentMessages } from '../../src/services/outbox/outbox-relay';
import { OutboxRelay } from '../../src/services/outbox/outbox-relay.service';
import { OutboxWakeup } from '../../src/services/outbox/outbox-wakeup';
import { Database } from '../../src/services/storage/database';
import { Wakeup } from '../../src/services/worker-loop';
import { createTestApp, TestApp } from '../support/app-context';
import { withoutBroker } from '../support/shared-services';
import { RMQ_URL } from '../support/harness';
import { uniqueName } from '../support/test-database';

describe('the outbox relay takes a bounded batch (real PostgreSQL)', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ BATCH_ROLE: 'api' });
    await t.db.query(
      `INSERT INTO batch.outbox (routing_key, payload) SELECT 'k', repeat('x', 100) FROM generate_series(1, 5)`,
    );
    await t.db.query(`INSERT INTO batch.outbox (routing_key, payload, sent_at) VALUES ('k', 'sent', now())`);
  });
  after(() => t.close());

  const unsent = (count: number, bytes: number) =>
    t.get(Database).transaction(async (tx) => (await unsentMessages(tx, count, bytes)).length);

  /** The only unsent messages: three a chunk wrote for `client`, each counted as 100 bytes; the chunk's id. */
  async function threeMessagesOf(client: string): Promise<string> {
    const { id: clientId } = await t.client(client);
    const [{ id: execution }] = await t.db.query<{ id: string }>(
      `INSERT INTO batch.chunks (status, worker, started_at, ended_at) VALUES ('COMPLETED', 'w', now(), now()) RETURNING id`,
    );
    await t.db.query(`UPDATE batch.outbox SET sent_at = now()`);
    await t.db.query(
      `INSERT INTO batch.outbox (routing_key, chunk_id, client_id, runs, size)
       SELECT 'k', $1, $2, '[]', 100 FROM generate_series(1, 3)`,
      [execution, clientId],
    );
    return execution;
  }

  it('takes the oldest unsent messages up to a count and, beyond the first, up to a size', async () => {
    assert.equal(await unsent(500, 1_000_000), 5);
    assert.equal(await unsent(2, 1_000_000), 2);
    assert.equal(await unsent(500, 250), 3, '100 + 100 + 100 bytes: the third starts below the budget');
    assert.equal(await unsent(500, 1), 1, 'a message larger than the budget still goes, alone');
  });

  it("makes messages on connections that never compile a plan (PostgreSQL's JIT took longer than making them)", async () => {
    assert.deepEqual(await t.get(Database).query(`SHOW jit`), [{ jit: 'off' }]);
  });

  it('reads every id as it is (ids in bytes of 0x80 and more too)', async () => {
    await t.db.query(`UPDATE batch.outbox SET sent_at = now()`);
    const ids = ['200', '1099511627776'];
    for (const id of ids)
      await t.db.query(`INSERT INTO batch.outbox (id, routing_key, payload) VALUES ($1, 'k', 'x')`, [id]);
    const read = await t.get(Database).transaction((tx) => unsentMessages(tx, 500, 1_000_000));
    assert.deepEqual(
      read.map((m) => m.id),
      ids,
    );
  });

  it('counts a message written as what it reports by its estimated size, and makes its text', async () => {
    const execution = await threeMessagesOf('relayed');
    assert.equal(await unsent(500, 150), 2, '100 + 100 bytes: the second starts below the budget');
    const [{ payload }] = await t.get(Database).transaction((tx) => unsentMessages(tx, 1, 1000));
    const message = JSON.parse(payload.toString()) as { settledAt: string };
    assert.deepEqual(message, {
      type: 'operations.settled',
      client: 'relayed',
      executionId: execution,
      settledAt: message.settledAt,
      operations: [],
    });
  });

  it('reads what makes the text of the messages it locked only, not of those another relay holds', async () => {
    await threeMessagesOf('held-elsewhere');
    // each message's parts read counted: batch.settled_parts wrapped by a function that counts its calls
    await t.db.query(`CREATE SEQUENCE public.texts_made;
      ALTER FUNCTION batch.settled_parts(batch.outbox) RENAME TO settled_parts_counted;
      CREATE FUNCTION batch.settled_parts(o batch.outbox) RETURNS json LANGUAGE plpgsql AS $$
        BEGIN PERFORM nextval('public.texts_made'); RETURN batch.settled_parts_counted(o); END $$`);
    const elsewhere = await t.get(Database).pool.connect();
    try {
      await elsewhere.query('BEGIN');
      await elsewhere.query(`SELECT id FROM batch.outbox WHERE sent_at IS NULL ORDER BY id LIMIT 2 FOR UPDATE`);
      assert.equal(await unsent(500, 1_000_000), 1, 'the one message no other relay holds');
      const [{ made }] = await t.db.query<{ made: string }>(
        `SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS made FROM public.texts_made`,
      );
      assert.equal(Number(made), 1, "one message's parts read");
    } finally {
      await elsewhere.query('ROLLBACK');
      elsewhere.release();
      await t.db.query(`DROP FUNCTION batch.settled_parts(batch.outbox);
        ALTER FUNCTION batch.settled_parts_counted(batch.outbox) RENAME TO settled_parts; DROP SEQUENCE public.texts_made`);
    }
  });

  it("lists a message's operations in order of id, whatever order the queue holds them in", async () => {
    const client = await t.client('ordered');
    const [{ id: execution }] = await t.db.query<{ id: string }>(
      `INSERT INTO batch.chunks (status, worker, started_at, ended_at) VALUES ('COMPLETED', 'w', now(), now()) RETURNING id`,
    );
    // stored last id first, so that the table's own order is the reverse
    await t.db.query(
      `INSERT INTO batch.operations (id, client_id, target, type, label)
       SELECT g, $1, 'public.t', 'delete', 'op ' || g FROM generate_series(2009, 2000, -1) g`,
      [client.id],
    );
    await t.db.query(`ANALYZE batch.operations`);
    await t.db.query(`UPDATE batch.outbox SET sent_at = now()`);
    await t.db.query(
      `INSERT INTO batch.outbox (routing_key, chunk_id, client_id, runs, exceptions, size)
       VALUES ('k', $1, $2, '[["2000","2002","public.t","delete"],["2005","2009","public.t","delete"]]',
               '{"2006": "\\"status\\":\\"FAILED\\""}', 100)`,
      [execution, client.id],
    );
    const [{ payload }] = await t.get(Database).transaction((tx) => unsentMessages(tx, 1, 1000));
    const { operations } = JSON.parse(payload.toString()) as {
      operations: { id: string; label: string; status: string }[];
    };
    assert.deepEqual(
      operations.map((o) => [o.id, o.label, o.status]),
      [2000, 2001, 2002, 2005, 2006, 2007, 2008, 2009].map((id) => [
        String(id),
        `op ${id}`,
        id === 2006 ? 'FAILED' : 'COMPLETED',
      ]),
    );
  });
});

describe('the outbox relay runs in a thread of its own (real PostgreSQL, RabbitMQ)', () => {
  if (withoutBroker()) return;
  let t: TestApp;
  before(async () => {
    t = await createTestApp({ BATCH_ROLE: 'worker', BATCH_OUTBOX_INTERVAL: '3600000' });
  });
  after(() => t.close());

  const relay = () => t.get(OutboxRelay);
  const thread = () => (relay() as unknown as { thread: { worker: Worker } | null }).thread;
  async function until(what: string, holds: () => Promise<boolean> | boolean): Promise<void> {
    for (let i = 0; i < 100 && !(await holds()); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(await holds(), what);
  }
  async function relayed(): Promise<void> {
    const [{ id }] = await t.db.query<{ id: string }>(
      `INSERT INTO batch.outbox (routing_key, payload) VALUES ('operations.settled.nobody', '{}') RETURNING id`,
    );
    t.get(OutboxWakeup).notify(); // woken, not polled: the interval is an hour
    await until('the message was sent', async () => {
      const [row] = await t.db.query<{ sent: boolean }>(
        `SELECT sent_at IS NOT NULL AS sent FROM batch.outbox WHERE id = $1`,
        [id],
      );
      return row.sent;
    });
  }

  it('connects to the broker and publishes what a wake-up names', async () => {
    await until('the relay connected', () => relay().brokerConnected);
    await relayed();
  });

  it('is started again when its thread ends, and publishes again', async () => {
    const ended = thread();
    assert.ok(ended);
    await ended.worker.terminate();
    await until('another thread', () => thread() !== null && thread() !== ended && relay().brokerConnected);
    await relayed();
  });
});

describe('the outbox relay and a caller whose queue refuses messages (real PostgreSQL, RabbitMQ)', () => {
  if (withoutBroker()) return;
  let t: TestApp;
  const exchange = uniqueName('refusals');
  before(async () => {
    t = await createTestApp({ BATCH_ROLE: 'api' });
  });
  after(() => t.close());

  it('tries a refused message again after a back-off, and relays the others meanwhile', async () => {
    const url = RMQ_URL;
    const connection = await amqplib.connect(url);
    const channel = await connection.createChannel();
    await channel.assertExchange(exchange, 'topic', { durable: true });
    // a caller's queue that is full and refuses what is published to it: the broker answers with a negative confirm
    const { queue } = await channel.assertQueue('', {
      exclusive: true,
      arguments: { 'x-max-length': 0, 'x-overflow': 'reject-publish' },
    });
    await channel.bindQueue(queue, exchange, 'operations.settled.full');
    const relay = new RelayLoop(
      { url, exchange, intervalMs: 3_600_000 },
      t.get(Database).pool,
      new Wakeup(),
      {
        warn: () => {},
      },
      () => {},
    );
    try {
      await t.db.query(`UPDATE batch.outbox SET sent_at = now() WHERE sent_at IS NULL`);
      await t.db.query(
        `INSERT INTO batch.outbox (routing_key, payload)
         VALUES ('operations.settled.full', '{}'), ('operations.settled.open', '{}'), ('operations.settled.open', '{}')`,
      );
      relay.onApplicationBootstrap(); // connects, and relays at once
      const state = () =>
        t.db.query<{ routing_key: string; sent: boolean; refusals: number; later: boolean }>(
          `SELECT routing_key, sent_at IS NOT NULL AS sent, refusals, retry_at > now() AS later
             FROM batch.outbox WHERE sent_at IS NULL OR refusals > 0 OR routing_key LIKE '%.open' ORDER BY id`,
        );
      for (let i = 0; i < 100 && (await state()).some((row) => row.routing_key.endsWith('open') && !row.sent); i++)
        await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(await state(), [
        { routing_key: 'operations.settled.full', sent: false, refusals: 1, later: true },
        { routing_key: 'operations.settled.open', sent: true, refusals: 0, later: null },
        { routing_key: 'operations.settled.open', sent: true, refusals: 0, later: null },
      ]);
      assert.equal(await relay.relayBatch(), 0, 'nothing to publish before its retry time');

      await channel.unbindQueue(queue, exchange, 'operations.settled.full'); // room again: nothing refuses it
      await t.db.query(`UPDATE batch.outbox SET retry_at = now() WHERE refusals > 0`);
      assert.equal(await relay.relayBatch(), 1);
      assert.deepEqual(
        (await state()).filter((row) => !row.sent),
        [],
      );
    } finally {
      await relay.stop();
      await channel.deleteExchange(exchange);
      await connection.close();
    }
  });

  it('opens its channel again when the broker closed it, the connection up (its exchange deleted)', async () => {
    const connection = await amqplib.connect(RMQ_URL);
    const channel = await connection.createChannel();
    const wakeup = new Wakeup();
    const relay = new RelayLoop(
      { url: RMQ_URL, exchange, intervalMs: 100 },
      t.get(Database).pool,
      wakeup,
      {
        warn: () => {},
      },
      () => {},
    );
    const sent = async (id: string) =>
      (
        await t.db.query<{ sent: boolean }>(`SELECT sent_at IS NOT NULL AS sent FROM batch.outbox WHERE id = $1`, [id])
      )[0].sent;
    const publish = async () => {
      const [{ id }] = await t.db.query<{ id: string }>(
        `INSERT INTO batch.outbox (routing_key, payload) VALUES ('operations.settled.open', '{}') RETURNING id`,
      );
      wakeup.notify();
      for (let i = 0; i < 300 && !(await sent(id)); i++) await new Promise((resolve) => setTimeout(resolve, 100));
      return sent(id);
    };
    try {
      await t.db.query(`UPDATE batch.outbox SET sent_at = now() WHERE sent_at IS NULL`);
      relay.onApplicationBootstrap();
      assert.equal(await publish(), true);
      await channel.deleteExchange(exchange); // the relay's next publish closes its channel (404), not the connection
      assert.equal(await publish(), true, 'sent on a channel opened again, its exchange declared again');
    } finally {
      await relay.stop();
      await channel.deleteExchange(exchange);
      await connection.close();
    }
  });
});
