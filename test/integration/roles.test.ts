import assert from 'node:assert/strict';
import type { Type } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import { Poller } from '../../src/services/engine/poller.service';
import { PollerWakeupSubscriber } from '../../src/services/engine/poller-wakeup-broadcast.service';
import { OutboxRelay } from '../../src/services/outbox/outbox-relay.service';
import { RetentionSchedule } from '../../src/services/storage/retention.service';
import { createTestApp, TestApp } from '../support/app-context';
import { BROKER_MISSING } from '../support/shared-services';

describe('roles: the worker loops run in worker processes only (real PostgreSQL, RabbitMQ, Redis)', () => {
  let api: TestApp;

  before(async () => {
    api = await createTestApp({ BATCH_ROLE: 'api' });
  });
  after(() => api.close());

  const loops: Type<unknown>[] = [Poller, OutboxRelay, RetentionSchedule, PollerWakeupSubscriber];

  it('registers none of them for role api', () => {
    for (const loop of loops)
      assert.throws(() => api.get(loop), /not found|does not exist|Nest could not find/i, loop.name);
  });

  it('registers them for roles worker and all', async () => {
    for (const role of ['worker', 'all']) {
      const worker = await api.withConfig({ BATCH_ROLE: role });
      try {
        for (const loop of loops) assert.ok(worker.get(loop), `${role}: ${loop.name}`);
      } finally {
        await worker.close();
      }
    }
  });

  it(
    'starts the relay for roles worker and all: it connects to the broker',
    { skip: BROKER_MISSING ?? false },
    async () => {
      for (const role of ['worker', 'all']) {
        const worker = await api.withConfig({ BATCH_ROLE: role });
        try {
          for (let i = 0; i < 50 && !worker.get(OutboxRelay).brokerConnected; i++)
            await new Promise((resolve) => setTimeout(resolve, 100));
          assert.equal(worker.get(OutboxRelay).brokerConnected, true, `${role}: the relay connected`);
        } finally {
          await worker.close();
        }
      }
    },
  );
});
