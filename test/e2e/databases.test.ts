import assert from 'node:assert/strict';
import type { Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SHARED_DB } from '../support/shared-services';
import { createDatabase, dropDatabase, uniqueName } from '../support/test-database';
import {
  eventually,
  freePort,
  http,
  relayTo,
  serviceEnv,
  ServiceProcess,
  startService,
} from '../support/service-process';

type Health = { status: string; details: Record<string, Record<string, unknown>> };

/**
 * The databases of BATCH_DATABASES as an operator sees them (built service): each up or down in /health and the
 * metrics, one that does not answer never making the service unready and tried again until it does, its URL's
 * password in no log line.
 */
describe('other databases: reported, retried, never stopping the service (built service)', () => {
  const legacyName = uniqueName('legacy');
  let service: ServiceProcess;
  let relay: Server | undefined;
  let port: number;

  before(async () => {
    await createDatabase(legacyName);
    port = await freePort();
    const user = `${SHARED_DB.user}:${encodeURIComponent(String(SHARED_DB.password ?? ''))}`;
    service = await startService(
      serviceEnv({
        LOG_LEVEL: 'info',
        BATCH_DATABASES: JSON.stringify({
          legacy: `postgres://${user}@${SHARED_DB.host}:${SHARED_DB.port}/${legacyName}`,
          later: { url: `postgres://${SHARED_DB.user}:hunter2secret@127.0.0.1:${port}/${legacyName}`, poolSize: 2 },
        }),
      }),
    );
  });
  after(async () => {
    relay?.close();
    await service?.destroy();
    await dropDatabase(legacyName);
  });

  const health = async () => (await http<Health>(service, 'GET', '/health', null)).body;
  const gauge = async () => {
    const response = await fetch(`${service.url}/metrics`, { headers: { 'x-api-key': service.adminKey } });
    return (await response.text()).split('\n').filter((line) => line.startsWith('batch_database_up{'));
  };

  it('a database that does not answer is down, the service ready all the same', async () => {
    const response = await http<Health>(service, 'GET', '/health', null);
    assert.equal(response.status, 200);
    assert.equal(response.body.status, 'ok');
    assert.deepEqual(response.body.details.databases, {
      status: 'down',
      legacy: 'up',
      later: 'down',
      optional: true,
    });
    assert.deepEqual(await gauge(), [
      'batch_database_up{database="legacy"} 1',
      'batch_database_up{database="later"} 0',
    ]);
    assert.match(service.logs(), /database later \(127\.0\.0\.1:\d+\/legacy_[^)]+\) does not answer/);
    assert.doesNotMatch(service.logs(), /hunter2secret/);
  });

  it('is tried again, and up once it answers', async () => {
    relay = await relayTo(port, SHARED_DB.host ?? '127.0.0.1', Number(SHARED_DB.port));
    await eventually(async () => ((await health()).details.databases?.status === 'up' ? true : undefined), 25_000);
    assert.deepEqual(await gauge(), [
      'batch_database_up{database="legacy"} 1',
      'batch_database_up{database="later"} 1',
    ]);
    assert.match(service.logs(), /database later \(127\.0\.0\.1:\d+\/legacy_[^)]+\) answers/);
    assert.doesNotMatch(service.logs(), /hunter2secret/);
  });
});
