import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PrivateRedis, REDIS_MISSING, startRedis } from '../support/private-services';
import { createCaller, ServiceGroup, settleAll } from '../support/harness';
import { eventually, http, serviceEnv } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/** Redis (a private server of the test's own) stopped: the service keeps working (workers poll on their interval, rate limits fail open) and says so in its log. */
describe('fault: Redis stopped (built service, private Redis)', { skip: REDIS_MISSING ?? false }, () => {
  if (withoutBroker()) return;
  let redis: PrivateRedis;
  let group: ServiceGroup;

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    await group?.close();
    await redis?.destroy();
  });

  it('keeps applying operations across processes without Redis, and warns', async () => {
    group = new ServiceGroup(serviceEnv({ BATCH_PROCESS_OPERATION_INTERVAL: '300', REDIS_URL: redis.url }));
    const db = group.db;
    const api = await group.start('api');
    const worker = await group.start('worker');
    await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref text NOT NULL)`);
    const caller = await createCaller(api, 'steady', ['events']);

    const limited = await http<{ apiKey: string }>(api, 'POST', '/api/clients', api.adminKey, {
      name: 'limited',
      targets: ['events'],
      rateLimitPerSecond: 1,
    });
    await redis.stop();
    for (let i = 0; i < 5; i++) {
      const response = await http(api, 'POST', '/api/operations', limited.body.apiKey, {
        target: 'events',
        type: 'insert',
        values: { ref: `limited-${i}` },
      });
      assert.equal(response.status, 201, 'the rate limit fails open without Redis');
    }
    const { operations } = await caller.rpc.createOperations(
      Array.from({ length: 100 }, (_, i) => ({
        target: 'events',
        type: 'insert' as const,
        values: { ref: `down-${i}` },
      })),
    );
    await eventually(
      async () => (/Redis unavailable/.test(worker.logs()) && /Redis unavailable/.test(api.logs()) ? true : undefined),
      15_000,
      'the Redis warning',
    );
    await settleAll(db, caller, 30_000);
    assert.ok(operations.every((o) => caller.notified.get(o.id)?.status === 'COMPLETED'));

    await redis.start();
    await eventually(
      async () => (/Redis is back/.test(worker.logs()) ? true : undefined),
      15_000,
      'the worker to reconnect to Redis',
    );
    const more = await caller.rpc.createOperation({ target: 'events', type: 'insert', values: { ref: 'up' } });
    await eventually(async () => caller.notified.get(more.id), 15_000, 'the operation after Redis came back');
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.events`), 106);
    await caller.close();
  });
});
