import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sleep } from '../support/private-services';
import { createCaller, ServiceGroup, settleAll } from '../support/harness';
import { serviceEnv } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/**
 * SIGTERM under load: the service stops taking requests, finishes or rolls back the chunk in flight, and exits 0
 * within a bounded time; requests it had not answered are redelivered to the next instance, and everything it
 * acknowledged is applied exactly once.
 */
describe('SIGTERM during load (built service, real broker and database)', () => {
  if (withoutBroker()) return;
  let group: ServiceGroup;

  after(() => group?.close());

  it('exits cleanly and promptly, losing and repeating nothing', async (t) => {
    group = new ServiceGroup(serviceEnv({ BATCH_PROCESS_OPERATION_LIMIT: '300' }));
    const db = group.db;
    const first = await group.start();
    await db.query(`CREATE TABLE public.events (id bigserial PRIMARY KEY, ref text NOT NULL)`);
    const caller = await createCaller(first, 'steady', ['events'], 30_000);

    const requests = Array.from({ length: 30 }, (_, m) =>
      caller.rpc.createOperations(
        Array.from({ length: 500 }, (_, i) => ({
          target: 'events',
          type: 'insert' as const,
          values: { ref: `${m}-${i}` },
        })),
      ),
    );
    await sleep(300);
    const stopping = Date.now();
    const code = await first.stop();
    const took = Date.now() - stopping;
    t.diagnostic(`exited with ${code} after ${took} ms`);
    assert.equal(code, 0, first.logs());
    assert.ok(took < 15_000, `stopped within 15 s (${took} ms)`);

    await group.start();
    const answers = await Promise.all(requests);
    const acknowledged = answers.flatMap((a) => a.operations.map((o) => o.id));
    assert.equal(new Set(acknowledged).size, 15_000, 'every request was answered, by one instance or the next');
    const settled = await settleAll(db, caller, 60_000);
    assert.equal(settled.length, 15_000, 'a redelivered request stored nothing twice');
    assert.ok(settled.every((o) => o.status === 'COMPLETED'));
    assert.deepEqual(
      await db.query(`SELECT ref FROM public.events GROUP BY ref HAVING count(*) > 1`),
      [],
      'nothing applied twice',
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.events`), 15_000);
    await caller.close();
  });
});
