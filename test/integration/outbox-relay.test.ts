import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UNSENT_MESSAGES_SQL } from '../../src/services/outbox/outbox-relay.service';
import { Database } from '../../src/services/storage/database';
import { createTestApp, TestApp } from '../support/app-context';

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
    t.get(Database).transaction(async (tx) => (await tx.query(UNSENT_MESSAGES_SQL, [count, bytes])).rows.length);

  it('takes the oldest unsent messages up to a count and, beyond the first, up to a size', async () => {
    assert.equal(await unsent(500, 1_000_000), 5);
    assert.equal(await unsent(2, 1_000_000), 2);
    assert.equal(await unsent(500, 250), 3, '100 + 100 + 100 bytes: the third starts below the budget');
    assert.equal(await unsent(500, 1), 1, 'a message larger than the budget still goes, alone');
  });
});
