import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sleep } from '../support/private-services';
import { ServiceGroup } from '../support/harness';
import { eventually, http, shortLeaseEnv } from '../support/service-process';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { withoutBroker } from '../support/shared-services';

const TABLE = `(id int PRIMARY KEY, qty int, price numeric(12,2), note text, at timestamptz)`;
const ROWS = 300_000;
/** Short, so that a dead worker's execution is seen within seconds. */
const LEASE_MS = '2000';

/**
 * Job workers that die or stop while they copy: kill -9 at random moments (mid-chunk, right after a commit), SIGTERM
 * (handed back at a chunk boundary), and a schedule ticking on two processes while one is killed. Each time the
 * target ends equal to a one-shot INSERT … SELECT: nothing lost, nothing twice.
 */
describe('fault: job workers killed and stopped mid-copy (built service, real broker and database)', () => {
  if (withoutBroker()) return;
  let group: ServiceGroup;
  let key: string;

  before(async () => {
    group = new ServiceGroup(shortLeaseEnv(LEASE_MS));
    const first = await group.start();
    await group.start();
    await group.db.query(`CREATE TABLE src ${TABLE}`);
    await group.db.query(
      `INSERT INTO src SELECT g, g % 97, g / 3.0, 'n' || g, now() FROM generate_series(1, ${ROWS}) g`,
    );
    for (const table of ['killed', 'stopped', 'limited', 'ticks'])
      await group.db.query(`CREATE TABLE ${table} ${TABLE}`);
    const created = await http<{ apiKey: string }>(first, 'POST', '/api/clients', first.adminKey, {
      name: 'copier',
      targets: ['public.killed', 'public.stopped', 'public.limited', 'public.ticks'],
      sources: ['public.src'],
    });
    key = created.body.apiKey;
  });

  after(() => group?.close());

  const alive = () => group.alive();
  const launch = async (target: string, options: Record<string, unknown> = {}) => {
    const { status, body } = await http<IJobExecution>(alive()[0], 'POST', '/api/jobs/copy/executions', key, {
      parameters: { source: 'public.src', target: `public.${target}` },
      options: { chunkSize: 1000, ...options },
    });
    assert.equal(status, 202, JSON.stringify(body));
    return body;
  };
  const executionsOf = (instanceId: string) =>
    group.db.query<{ id: string; status: string; exit_description: string | null; lease_owner: string | null }>(
      `SELECT id, status, exit_description, lease_owner FROM batch.job_executions WHERE instance_id = $1 ORDER BY id`,
      [instanceId],
    );
  const assertCopied = async (table: string) => {
    assert.equal(await group.db.count(`SELECT count(*) AS n FROM ${table}`), ROWS, `${table}: no row lost or doubled`);
    assert.equal(
      await group.db.count(`SELECT count(*) AS n FROM (SELECT * FROM src EXCEPT SELECT * FROM ${table}) d`),
      0,
      `${table}: equal to the source`,
    );
  };

  it('kill -9 mid-copy, twice: the execution fails within the lease, is restarted, and completes exactly', async () => {
    const launched = await launch('killed');
    for (const chunks of [3, 40]) {
      const victim = await group.leaseHolder(launched.instanceId, chunks);
      await sleep(Math.random() * 150); // mid-chunk or right after a commit
      await group.killAndReplace(victim);
    }
    const done = await eventually(
      async () => {
        const executions = await executionsOf(launched.instanceId);
        return executions.at(-1)?.status === 'COMPLETED' ? executions : undefined;
      },
      120_000,
      'the copy to complete',
    );
    assert.deepEqual(
      done.map((e) => e.status),
      ['FAILED', 'FAILED', 'COMPLETED'],
    );
    assert.match(done[0].exit_description ?? '', /lease/);
    await assertCopied('killed');
    let seen = 0;
    for (const process of alive()) {
      const metrics = await (await fetch(`${process.url}/metrics`)).text();
      seen += Number(/batch_job_lease_losses_total\{job="copy"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    }
    assert.ok(seen >= 1, 'the lease losses are counted by the workers that saw them');
  });

  it('startLimit: a copy whose worker dies at every start ends FAILED and is not started again', async () => {
    // small chunks: a start not killed (a replacement still starting) must not finish the copy meanwhile
    const launched = await launch('limited', { chunkSize: 100 });
    for (let start = 1; start <= 3; start++)
      await group.killAndReplace(await group.leaseHolder(launched.instanceId, 2));
    const ended = await eventually(
      async () => {
        const executions = await executionsOf(launched.instanceId);
        return executions.length === 3 && executions.every((e) => e.status === 'FAILED') ? executions : undefined;
      },
      60_000,
      'the third start to fail',
    );
    await sleep(Number(LEASE_MS) + 500);
    assert.equal((await executionsOf(launched.instanceId)).length, ended.length, 'no fourth start');
    const restart = await http<{ details: { reason: string } }>(
      alive()[0],
      'POST',
      `/api/jobs/executions/${ended[2].id}/restart`,
      key,
    );
    assert.deepEqual([restart.status, restart.body.details.reason], [409, 'START_LIMIT_EXCEEDED']);
  });

  it('SIGTERM: the worker hands the copy back at a chunk boundary and another continues the same execution', async () => {
    const launched = await launch('stopped');
    const owner = await group.leaseHolder(launched.instanceId, 5);
    assert.equal(await owner.stop(), 0);
    await group.start();
    const done = await eventually(
      async () => {
        const { body } = await http<IJobExecution>(alive()[0], 'GET', `/api/jobs/executions/${launched.id}`, key);
        return body.status === 'COMPLETED' ? body : undefined;
      },
      120_000,
      'the copy to complete',
    );
    assert.equal(done.startCount, 1, 'the same execution, not a restart');
    assert.equal(done.steps[0].writeCount, ROWS);
    assert.equal((await executionsOf(launched.instanceId)).length, 1);
    await assertCopied('stopped');
  });

  it('a schedule every second on two processes, one killed midway: each tick launched once, none missed', async () => {
    const [first] = alive();
    const put = await http(first, 'PUT', '/api/jobs/schedules/every-second', first.adminKey, {
      job: 'copy',
      cron: '* * * * * *',
      client: 'copier',
      parameters: { source: 'public.src', target: 'public.ticks', mode: 'upsert', to: 10 },
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const putAt = Date.now();
    await sleep(15_000);
    await group.killAndReplace(alive()[0]);
    await sleep(15_000);
    const deleting = Date.now();
    assert.equal((await http(alive()[0], 'DELETE', '/api/jobs/schedules/every-second', first.adminKey)).status, 204);
    const ticks = await group.db.query<{ at: string; executions: string; completed: string }>(
      `SELECT i.parameters->>'scheduledAt' AS at, count(e.id) AS executions,
              count(e.id) FILTER (WHERE e.status = 'COMPLETED') AS completed
         FROM batch.job_instances i JOIN batch.job_executions e ON e.instance_id = i.id
        WHERE i.parameters ? 'scheduledAt' GROUP BY 1 ORDER BY 1`,
    );
    // from the first tick after the PUT was answered to one before the DELETE was, every second once
    const [firstTick, lastTick] = [Date.parse(ticks[0].at), Date.parse(ticks.at(-1)!.at)];
    assert.ok(firstTick > putAt - 1000 && firstTick <= putAt + 1000, `the first tick ${ticks[0].at}`);
    assert.ok(lastTick >= deleting - Number(LEASE_MS) - 1000, `the last tick ${ticks.at(-1)!.at}`);
    for (let i = 1; i < ticks.length; i++)
      assert.equal(Date.parse(ticks[i].at) - Date.parse(ticks[i - 1].at), 1000, `the tick after ${ticks[i - 1].at}`);
    assert.deepEqual(
      ticks.filter((t) => Number(t.executions) > 1 && Number(t.completed) > 1),
      [],
      'no tick completed twice',
    );
    await eventually(
      async () => {
        const open = await group.db.count(
          `SELECT count(*) AS n FROM batch.job_instances i
            WHERE i.parameters ? 'scheduledAt'
              AND NOT EXISTS (SELECT 1 FROM batch.job_executions e WHERE e.instance_id = i.id AND e.status = 'COMPLETED')`,
        );
        return open === 0 ? true : undefined;
      },
      30_000,
      'every tick to complete once',
    );
  });
});
