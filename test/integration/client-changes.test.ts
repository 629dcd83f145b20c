import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { BatchError } from '../../src/services/batch-error';
import { ClientChanges } from '../../src/services/access/client-changes';
import { ClientService } from '../../src/services/access/client.service';
import { createTestApp, TestApp } from '../support/app-context';
import { eventually } from '../support/service-process';

const unauthenticated = (error: unknown) => error instanceof BatchError && error.code === 'UNAUTHENTICATED';

/** Clients kept by the process that authenticated them, and forgotten as changes of clients commit (real PostgreSQL). */
describe('clients kept while their changes are heard', () => {
  let t: TestApp;
  let clients: ClientService;
  let changes: ClientChanges;

  before(async () => {
    t = await createTestApp();
    clients = t.get(ClientService);
    changes = t.get(ClientChanges);
  });
  after(() => t.close());
  beforeEach(() => t.db.query(`ALTER TABLE batch.clients ENABLE TRIGGER clients_changed`));

  /** A client whose key this process keeps: authenticated once changes are heard. */
  async function keptClient(name: string): Promise<{ id: string; apiKey: string }> {
    const created = await clients.create({ name, targets: ['*'] });
    await listening();
    await clients.authenticate(created.apiKey);
    return created;
  }

  const listening = () => eventually(async () => changes.watch() || undefined, 5000, 'listening for client changes');

  /** Until the key is refused as the change `what` reaches this process. */
  const refusedSoon = (apiKey: string, what: string) =>
    eventually(
      () =>
        clients.authenticate(apiKey).then(
          () => undefined,
          (error: unknown) => unauthenticated(error) || undefined,
        ),
      2000,
      what,
    );

  /** A change this process is not told of: what it answers then shows whether it looked the client up. */
  async function revokeUnheard(id: string): Promise<void> {
    await t.db.query(`ALTER TABLE batch.clients DISABLE TRIGGER clients_changed`);
    await t.db.query(`UPDATE batch.clients SET revoked_at = now() WHERE id = $1`, [id]);
  }

  it('keeps an authenticated client until a change of clients commits, an operator’s SQL included', async () => {
    const { id, apiKey } = await keptClient('kept');
    await revokeUnheard(id);
    assert.equal((await clients.authenticate(apiKey)).id, id, 'kept: not looked up again');

    await t.db.query(`ALTER TABLE batch.clients ENABLE TRIGGER clients_changed`);
    await t.db.query(`UPDATE batch.clients SET updated_at = now() WHERE name = 'nobody'`);
    await refusedSoon(apiKey, 'the revocation, once a change was notified');
  });

  it('forgets at once what its own changes touch: rotation, grants and revocation', async () => {
    const { id, apiKey } = await keptClient('changed here');
    const rotated = await clients.rotateKey(id);
    await assert.rejects(clients.authenticate(apiKey), unauthenticated);
    await clients.authenticate(rotated.apiKey);
    await clients.update(id, { targets: ['notes'] });
    assert.deepEqual((await clients.authenticate(rotated.apiKey)).targets, ['notes']);
    await clients.revoke(id);
    await assert.rejects(clients.authenticate(rotated.apiKey), unauthenticated);
  });

  it('looks clients up for every request while it cannot listen, and keeps them again once it can', async () => {
    const { id, apiKey } = await keptClient('unheard');
    await revokeUnheard(id);
    await t.db.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE application_name = 'batch-service:client-changes' AND datname = current_database()`,
    );
    await refusedSoon(apiKey, 'the revocation, looked up once the listening connection was lost');
    await listening();
  });
});
