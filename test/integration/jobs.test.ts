import assert from 'node:assert/strict';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { after, before, describe, it } from 'node:test';
import type { PoolClient } from 'pg';
import { AppModule } from '../../src/app.module';
import { ClientService } from '../../src/services/access/client.service';
import { CatalogService } from '../../src/services/storage/catalog.service';
import { Database } from '../../src/services/storage/database';
import { BatchError } from '../../src/services/batch-error';
import { job, tasklet, type JobDefinition, type StepRun } from '../../src/services/jobs/job-definition';
import { AfterStep, BatchJob, OnSkip } from '../../src/services/jobs/job-registry.service';
import { JobSchedules } from '../../src/services/jobs/job-schedules.service';
import { Jobs, startJobs } from '../support/jobs-app';
import { TestDatabase, testConfig } from '../support/test-database';

/** A job whose first step routes on a code of its own: `count` exits EMPTY when the table has no rows. */
@BatchJob()
@Injectable()
class FlowJob {
  readonly definition: JobDefinition = job('flow')
    .describe('routes on a custom exit code')
    .parameter('table', { type: 'string', required: true, description: 'a table' })
    .step(
      'count',
      tasklet(async (tx: PoolClient, step: StepRun) => {
        const { rows } = await tx.query(`SELECT count(*)::int AS n FROM ${String(step.job.parameters.table)}`);
        step.exitCode = rows[0].n === 0 ? 'EMPTY' : null;
        return 'FINISHED';
      }),
    )
    .on('EMPTY')
    .to('fill')
    .step(
      'report',
      tasklet(async (tx) => (await tx.query(`INSERT INTO flow_log VALUES ('report')`), 'FINISHED')),
    )
    .on('*')
    .end()
    .step(
      'fill',
      tasklet(async (tx) => (await tx.query(`INSERT INTO flow_log VALUES ('fill')`), 'FINISHED')),
    )
    .build();

  readonly stepsEnded: string[] = [];

  @AfterStep('flow')
  ended(step: StepRun): void {
    this.stepsEnded.push(step.name);
  }

  @OnSkip()
  skipped(): void {
    // listeners of all jobs are found on any provider; this one only has to be callable
  }
}

/** A job started once per instance: its step fails while the table `once_target` is missing. */
@BatchJob()
@Injectable()
class OnceJob {
  readonly definition: JobDefinition = job('once')
    .describe('never started twice')
    .parameter('day', { type: 'string', required: true, description: 'a day' })
    .preventRestart()
    .step(
      'write',
      tasklet(async (tx) => (await tx.query(`INSERT INTO once_target VALUES (1)`), 'FINISHED')),
    )
    .build();
}

/** A job whose one step always fails. */
@BatchJob()
@Injectable()
class FailingJob {
  readonly definition: JobDefinition = job('fails')
    .describe('fails at its first chunk')
    .step(
      'fail',
      tasklet(async () => {
        throw new Error('always');
      }),
    )
    .build();
}

@Module({ providers: [FlowJob, OnceJob, FailingJob] })
class FlowJobModule {}

const TABLE = `(id int PRIMARY KEY, qty int, price numeric(12,2), note text, at timestamptz)`;

async function conflictOf(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  const error = await promise.then(
    () => assert.fail('expected a CONFLICT'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof BatchError, String(error));
  assert.equal(error.code, 'CONFLICT', error.message);
  return error.details as Record<string, unknown>;
}

describe('jobs on PostgreSQL: launch, restart, leases, flow, schedules', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.dst', 'public.flow_log'], sources: ['public.src'] }, [FlowJobModule]);
    await jobs.db.query(`CREATE TABLE src ${TABLE}; CREATE TABLE dst ${TABLE}; CREATE TABLE flow_log (step text)`);
    await jobs.db.query(
      `INSERT INTO src SELECT g, g % 100, g / 7.0, 'note ' || g, now() FROM generate_series(1, 50000) g`,
    );
  });
  after(() => jobs.close());

  it('20 concurrent launches of one instance make exactly one execution; after COMPLETED it is refused', async () => {
    const parameters = { source: 'public.src', target: 'public.dst', to: 10000 };
    const launches = await Promise.allSettled(
      Array.from({ length: 20 }, () => jobs.operator.launch(jobs.client, 'copy', parameters, { chunkSize: 3000 })),
    );
    const launched = launches.filter((l) => l.status === 'fulfilled').map((l) => l.value);
    assert.equal(launched.length, 1);
    const executionId = launched[0].id;
    for (const refused of launches.filter((l) => l.status === 'rejected')) {
      const error = refused.reason as BatchError;
      assert.equal(error.code, 'CONFLICT');
      assert.deepEqual(error.details, { reason: 'JOB_EXECUTION_RUNNING', executionId });
    }
    assert.equal((await jobs.db.query(`SELECT 1 FROM batch.job_instances`)).length, 1);
    const unknown = await jobs.operator.launch(jobs.client, 'nope', {}, {}).catch((error: BatchError) => error);
    assert.deepEqual(
      [(unknown as BatchError).code, (unknown as BatchError).message],
      [
        'NOT_FOUND',
        'No job named "nope": the jobs are copy, fails, flow, import, once (GET /api/jobs, or listJobs over RPC, describes ' +
          'each with its parameters)',
      ],
    );

    await jobs.runAll();
    const done = await jobs.execution(executionId);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(done.steps[0].writeCount, 10000);
    assert.equal(done.steps[0].commitCount, 4);
    assert.deepEqual(
      await conflictOf(jobs.operator.launch(jobs.client, 'copy', parameters, {})),
      { reason: 'JOB_INSTANCE_COMPLETE', executionId },
      'options do not identify an instance',
    );
  });

  it('a stop of an execution still STARTING ends it STOPPED at once: no worker has to see it first', async () => {
    // this app runs no job worker (role api): nothing but the stop itself can move the execution out of STARTING
    const parameters = { source: 'public.src', target: 'public.dst', runId: 'stopped-before-it-started' };
    const launched = await jobs.operator.launch(jobs.client, 'copy', parameters, {});
    assert.equal(launched.status, 'STARTING');
    assert.deepEqual(
      [launched.exitStatus, launched.progress],
      [null, { unit: 'items', done: 0, total: null, perSecond: 0, etaSeconds: null }],
      'no exit status before its end; a progress of nothing done yet, before a step reported any',
    );
    const stopped = await jobs.operator.stop(jobs.client, launched.id);
    assert.deepEqual(
      [stopped.status, stopped.exitStatus?.code, stopped.startedAt],
      ['STOPPED', 'STOPPED', null],
      'the answer to the stop is the execution stopped, never started',
    );
    assert.ok(stopped.endedAt, 'ended');
    assert.equal((await jobs.execution(launched.id)).status, 'STOPPED', 'as read again');
    assert.equal(await jobs.leases.claimExecution('worker-a', 30_000), null, 'nothing left for a worker to claim');
  });

  it('a restart after FAILED resumes at the last committed chunk: nothing read twice, nothing missed', async () => {
    await jobs.db.query(`ALTER TABLE dst ADD CONSTRAINT not_25001 CHECK (id <> 25001)`);
    const parameters = { source: 'public.src', target: 'public.dst', from: 10000, to: '40000' };
    const first = await jobs.operator.launch(jobs.client, 'copy', parameters, { chunkSize: 5000 });
    await jobs.runAll();
    const failed = await jobs.execution(first.id);
    assert.equal(failed.status, 'FAILED');
    assert.match(failed.exitStatus!.description ?? '', /not_25001|skip/);
    assert.equal(failed.steps[0].writeCount, 15000, 'the chunks before the bad row stay');
    assert.equal(failed.restartable, true, 'FAILED, the newest of its instance, starts left');
    assert.equal(await countOf(jobs.db, 'dst'), 25000);
    assert.equal(failed.restartable, true);

    await jobs.db.query(`ALTER TABLE dst DROP CONSTRAINT not_25001`);
    const second = await jobs.operator.restart(jobs.client, first.id);
    assert.equal(second.startCount, 2);
    assert.equal(second.instanceId, first.instanceId);
    assert.equal(second.restartable, false, 'not ended');
    assert.equal((await jobs.execution(first.id)).restartable, false, 'a newer execution of its instance exists');
    await jobs.runAll();
    const completed = await jobs.execution(second.id);
    assert.equal(completed.status, 'COMPLETED');
    assert.deepEqual(
      [completed.restartable, (await jobs.execution(first.id)).restartable],
      [false, false],
      'completed, and restarted since',
    );
    assert.equal(completed.steps[0].readCount, 15000, 'the restart reads only what the failed run did not commit');
    assert.equal(completed.progress?.done, 30000);
    assert.equal(await countOf(jobs.db, 'dst'), 40000);
    await conflictOf(jobs.operator.restart(jobs.client, second.id));

    // a column added to both tables since changes what the parameters mean, not which instance the failed run was of
    await jobs.db.query(`ALTER TABLE src ADD COLUMN extra int; ALTER TABLE dst ADD COLUMN extra int`);
    await jobs.app.get(CatalogService).reload(); // as after BATCH_CATALOG_TTL
    try {
      assert.equal((await conflictOf(jobs.operator.restart(jobs.client, first.id))).reason, 'JOB_INSTANCE_COMPLETE');
    } finally {
      await jobs.db.query(`ALTER TABLE src DROP COLUMN extra; ALTER TABLE dst DROP COLUMN extra`);
      await jobs.app.get(CatalogService).reload();
    }
  });

  it('a partitioned copy: every key range by whichever worker claims it, the step the sum of its partitions', async () => {
    const launched = await jobs.operator.launch(
      jobs.client,
      'copy',
      { source: 'public.src', target: 'public.dst', from: 40000, mode: 'upsert' },
      { partitions: 4, chunkSize: 1000 },
    );
    await Promise.all([jobs.runAll('worker-a'), jobs.runAll('worker-b')]);
    const done = await jobs.execution(launched.id);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(done.steps.length, 1);
    assert.equal(done.steps[0].writeCount, 10000);
    const partitions = await jobs.db.query<{ partition: string; owner: string }>(
      `SELECT partition FROM batch.step_executions WHERE job_execution_id = $1 AND partition IS NOT NULL`,
      [launched.id],
    );
    assert.equal(partitions.length, 4);
    assert.equal(await countOf(jobs.db, 'dst'), 50000);
    const [{ diff }] = await jobs.db.query<{ diff: string }>(
      `SELECT count(*) AS diff FROM (SELECT * FROM src EXCEPT SELECT * FROM dst) d`,
    );
    assert.equal(Number(diff), 0);
  });

  it('a dead worker: its execution is FAILED once the lease ran out, launched again up to startLimit', async () => {
    const launched = await jobs.operator.launch(
      jobs.client,
      'copy',
      { source: 'public.src', target: 'public.dst', from: 0, to: 100, mode: 'upsert' },
      {},
    );
    const started: string[] = [];
    const dies = async () => {
      const claimed = await jobs.leases.claimExecution('dead-worker', 1);
      assert.ok(claimed, `start ${started.length + 1} was launched`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const { ended } = await jobs.leases.reapExpired((tx, lost) => jobs.operator.restartLost(tx, lost));
      assert.deepEqual(
        ended.map((e) => e.id),
        [claimed.id],
      );
      started.push(claimed.id);
      const lost = await jobs.execution(claimed.id);
      assert.equal(lost.status, 'FAILED');
      assert.match(lost.exitStatus?.description ?? '', /lease/);
      return lost;
    };
    await dies();
    assert.equal(started[0], launched.id);
    const again = await dies();
    assert.equal(again.startCount, 2, 'launched again after it was lost');
    assert.equal((await jobs.execution(started[0])).restartable, false, 'launched again already');
    assert.equal(again.restartable, true, 'not launched again: a restart by hand starts it');
    assert.match(
      again.exitStatus?.description ?? '',
      /not launched again: the execution before it was lost at the same/,
    );
    assert.equal(await jobs.leases.claimExecution('dead-worker', 1), null, 'lost twice at one position: not again');
    await jobs.operator.restart(jobs.client, started[1]);
    await dies();
    assert.equal(await jobs.leases.claimExecution('dead-worker', 1), null, 'startLimit 3: no fourth start');
    assert.equal((await jobs.execution(started[2])).restartable, false, 'at its startLimit');
    assert.deepEqual(await conflictOf(jobs.operator.restart(jobs.client, started[2])), {
      reason: 'START_LIMIT_EXCEEDED',
      executionId: started[2],
    });
    // a follower finds each start of the instance, the automatic one included, and none of another instance
    const other = await jobs.operator.launch(jobs.client, 'copy', { source: 'public.src', target: 'public.dst' }, {});
    await jobs.operator.stop(jobs.client, other.id);
    const instance = await jobs.operator.list(jobs.client, { instanceId: launched.instanceId });
    assert.deepEqual(
      instance.items.map((e) => e.id),
      [...started].reverse(),
    );
    const page = await jobs.operator.list(jobs.client, { instanceId: launched.instanceId, limit: 1 });
    assert.deepEqual([page.items[0].id, page.nextCursor], [started[2], started[2]]);
  });

  it('flow: a step exiting with a custom code routes to the step named for it; listeners see each step', async () => {
    const table = jobs.db.query.bind(jobs.db);
    const empty = await jobs.operator.launch(jobs.client, 'flow', { table: 'flow_log' }, {});
    await jobs.runAll();
    assert.deepEqual(
      (await table<{ step: string }>(`SELECT step FROM flow_log`)).map((r) => r.step),
      ['fill'],
    );
    const full = await jobs.operator.launch(jobs.client, 'flow', { table: 'public.flow_log' }, {});
    await jobs.runAll();
    assert.deepEqual(
      (await table<{ step: string }>(`SELECT step FROM flow_log ORDER BY step`)).map((r) => r.step),
      ['fill', 'report'],
    );
    const first = await jobs.execution(empty.id);
    assert.deepEqual(
      first.steps.map((s) => [s.name, s.exitStatus?.code]),
      [
        ['count', 'EMPTY'],
        ['fill', 'COMPLETED'],
      ],
    );
    assert.equal((await jobs.execution(full.id)).status, 'COMPLETED');
  });

  it('preventRestart: an instance that failed is not started again', async () => {
    const failed = await jobs.operator.launch(jobs.client, 'once', { day: 'monday' }, {});
    await jobs.runAll();
    assert.deepEqual(
      [(await jobs.execution(failed.id)).status, (await jobs.execution(failed.id)).restartable],
      ['FAILED', false],
    );
    assert.deepEqual(await conflictOf(jobs.operator.restart(jobs.client, failed.id)), {
      reason: 'JOB_NOT_RESTARTABLE',
      executionId: failed.id,
    });
  });

  it('abandon: refused while a restart of the instance runs; of two abandons at once, one', async () => {
    const first = await jobs.operator.launch(jobs.client, 'fails', { runId: 'abandoned' }, {});
    await jobs.runAll();
    const second = await jobs.operator.restart(jobs.client, first.id);
    assert.deepEqual(await conflictOf(jobs.operator.abandon(jobs.client, first.id)), {
      reason: 'JOB_EXECUTION_RUNNING',
      executionId: second.id,
    });
    await jobs.runAll();
    assert.equal((await jobs.execution(second.id)).status, 'FAILED');

    const both = await Promise.allSettled([first.id, second.id].map((id) => jobs.operator.abandon(jobs.client, id)));
    assert.equal(both.filter((outcome) => outcome.status === 'fulfilled').length, 1, 'one abandon, the other refused');
    const [abandoned] = await jobs.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM batch.job_executions WHERE id IN ($1, $2) AND status = 'ABANDONED'`,
      [first.id, second.id],
    );
    assert.equal(abandoned.n, 1);
    const other = both[0].status === 'fulfilled' ? second.id : first.id;
    assert.equal((await conflictOf(jobs.operator.abandon(jobs.client, other))).reason, 'JOB_INSTANCE_COMPLETE');
  });

  it('grants are checked again when a worker starts an execution: a narrowed client runs nothing', async () => {
    const launched = await jobs.operator.launch(
      jobs.client,
      'copy',
      { source: 'public.src', target: 'public.dst', mode: 'upsert', to: 5 },
      {},
    );
    await jobs.db.query(`UPDATE batch.clients SET sources = '{}' WHERE name = 'copier'`);
    try {
      await jobs.runAll();
      const refused = await jobs.execution(launched.id);
      assert.equal(refused.status, 'FAILED');
      assert.match(refused.exitStatus?.description ?? '', /^FORBIDDEN: .*public\.src/);
      assert.deepEqual(refused.steps, [], 'no step ran');
    } finally {
      await jobs.db.query(`UPDATE batch.clients SET sources = '{public.src}' WHERE name = 'copier'`);
    }
  });

  it('a schedule ticking on two processes launches each tick once; missed ticks within backfill are launched', async () => {
    const processes = await Promise.all(
      [1, 2].map(() =>
        NestFactory.createApplicationContext(AppModule.forRoot(testConfig({ DB_NAME: jobs.db.name })), {
          logger: ['error'],
        }),
      ),
    );
    try {
      const [here, there] = processes.map((p) => p.get(JobSchedules));
      await here.put('every-second', {
        job: 'copy',
        cron: '* * * * * *',
        client: 'copier',
        parameters: { source: 'public.src', target: 'public.dst', mode: 'upsert', to: 10 },
      });
      const until = Date.now() + 3200;
      while (Date.now() < until) {
        await Promise.all([here.tick(), there.tick(), here.tick()]);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const ticks = await scheduledTicks(jobs.db);
      assert.ok(ticks.length >= 3 && ticks.length <= 4, `ticks: ${ticks.join(', ')}`);
      assert.equal(new Set(ticks).size, ticks.length, 'no tick launched twice');
      for (let i = 1; i < ticks.length; i++)
        assert.equal(Date.parse(ticks[i]) - Date.parse(ticks[i - 1]), 1000, 'no tick missed');
      const [listed] = await here.list('every-second');
      assert.equal(listed.lastTickAt, ticks[ticks.length - 1], 'the newest tick launched');
      assert.ok(Date.parse(listed.nextTickAt!) > Date.parse(listed.lastTickAt!), 'the next tick after it');
      assert.equal(listed.enabled, true);

      // the service was down 30 s: the ticks of the last 15 s (backfillSeconds) are launched, the older ones not
      await here.put('every-second', {
        job: 'copy',
        cron: '* * * * * *',
        client: 'copier',
        parameters: { source: 'public.src', target: 'public.dst', mode: 'upsert', to: 20 },
        backfillSeconds: 15,
      });
      await jobs.db.query(
        `UPDATE batch.job_schedules SET next_tick_at = date_trunc('second', now()) - interval '30 seconds'`,
      );
      await there.tick();
      const backfilled = (await scheduledTicks(jobs.db, 20)).map((t) => Date.parse(t));
      assert.ok(backfilled.length >= 15 && backfilled.length <= 17, `backfilled ${backfilled.length}`);
      assert.ok(Date.now() - backfilled[0] <= 16_000, 'nothing older than the backfill window');

      // disabled: kept, listed without a next tick, and no tick is launched
      const disabled = await here.put('every-second', {
        job: 'copy',
        cron: '* * * * * *',
        client: 'copier',
        parameters: { source: 'public.src', target: 'public.dst', mode: 'upsert', to: 20 },
        enabled: false,
      });
      assert.deepEqual([disabled.enabled, disabled.nextTickAt], [false, null]);
      assert.equal(disabled.lastTickAt, new Date(backfilled[backfilled.length - 1]).toISOString(), 'kept');
      const whileEnabled = (await scheduledTicks(jobs.db, 20)).length;
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await Promise.all([here.tick(), there.tick()]);
      assert.equal((await scheduledTicks(jobs.db, 20)).length, whileEnabled, 'no tick while disabled');

      // its client revoked: each tick is skipped (not launched to fail at start), and the schedule moves on
      const clients = processes[0].get(ClientService);
      const revoked = await clients.create({ name: 'revoked', targets: ['public.dst'], sources: ['public.src'] });
      await here.put('of-revoked', {
        job: 'copy',
        cron: '* * * * * *',
        client: 'revoked',
        parameters: { source: 'public.src', target: 'public.dst', mode: 'upsert', to: 30 },
      });
      await clients.revoke(revoked.id);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await here.tick();
      assert.deepEqual(await scheduledTicks(jobs.db, 30), [], 'nothing launched for a revoked client');
      const [skipping] = await here.list('of-revoked');
      assert.ok(Date.parse(skipping.nextTickAt!) > Date.now() - 1000, 'its due tick passed over');
      await here.delete('of-revoked');

      await here.delete('every-second');
      const before = (await scheduledTicks(jobs.db, 20)).length;
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await there.tick();
      assert.equal((await scheduledTicks(jobs.db, 20)).length, before, 'no tick after the delete');
    } finally {
      await Promise.all(processes.map((p) => p.close()));
    }
  });
  it('schedules: a put waits for a tick being launched; a broken cron stops only its own; a failed launch is tried again', async () => {
    const schedules = jobs.app.get(JobSchedules);
    const copy = (to: number) => ({ source: 'public.src', target: 'public.dst', mode: 'upsert', to });
    await schedules.put('nightly', { job: 'copy', cron: '0 0 * * *', client: 'copier', parameters: copy(40) });
    const [{ next }] = await jobs.db.query<{ next: Date }>(
      `SELECT next_tick_at AS next FROM batch.job_schedules WHERE name = 'nightly'`,
    );
    // a worker launching that tick holds the row, then moves it on; a put meanwhile waits for it
    const launching = await jobs.app.get(Database).pool.connect();
    try {
      await launching.query('BEGIN');
      await launching.query(
        `UPDATE batch.job_schedules SET last_tick_at = $1, next_tick_at = $1::timestamptz + interval '1 day' WHERE name = 'nightly'`,
        [next],
      );
      const put = schedules.put('nightly', { job: 'copy', cron: '0 0 * * *', client: 'copier', parameters: copy(41) });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await launching.query('COMMIT');
      const replaced = await put;
      assert.equal(
        Date.parse(replaced.nextTickAt!),
        next.getTime() + 86_400_000,
        'the tick launched is not armed again',
      );
    } finally {
      launching.release();
    }
    await schedules.delete('nightly');

    for (const name of ['broken', 'sound'])
      await schedules.put(name, { job: 'copy', cron: '* * * * * *', client: 'copier', parameters: copy(42) });
    await jobs.db.query(`UPDATE batch.job_schedules SET cron = 'every now and then' WHERE name = 'broken'`);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await schedules.tick();
    const [broken, sound] = await Promise.all(['broken', 'sound'].map(async (name) => (await schedules.list(name))[0]));
    assert.equal(broken.nextTickAt, '9999-12-31T00:00:00.000Z', 'stopped until it is put again');
    assert.ok(Date.parse(sound.lastTickAt!) > Date.now() - 3000, 'the other one launched');
    await Promise.all(['broken', 'sound'].map((name) => schedules.delete(name)));

    // a launch the database refuses for a moment (a serialization failure): the tick stays due and is launched next turn
    await jobs.db.query(`CREATE SEQUENCE public.launch_failures;
      CREATE FUNCTION public.fail_first_launch() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('public.launch_failures') = 1 THEN RAISE EXCEPTION 'could not serialize' USING ERRCODE = '40001'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_first_launch BEFORE INSERT ON batch.job_executions FOR EACH ROW EXECUTE FUNCTION public.fail_first_launch()`);
    try {
      await schedules.put('hourly', { job: 'copy', cron: '0 * * * *', client: 'copier', parameters: copy(43) });
      await jobs.db.query(
        `UPDATE batch.job_schedules SET next_tick_at = date_trunc('second', now()) WHERE name = 'hourly'`,
      );
      const [due] = await schedules.list('hourly');
      assert.equal(await schedules.tick(), 0, 'no next tick moved on');
      assert.deepEqual(await scheduledTicks(jobs.db, 43), []);
      assert.equal((await schedules.list('hourly'))[0].nextTickAt, due.nextTickAt, 'the failed tick stays the next');
      assert.equal(await schedules.tick(), 1);
      assert.deepEqual(await scheduledTicks(jobs.db, 43), [due.nextTickAt], 'launched at the next turn');
    } finally {
      await jobs.db.query(`DROP TRIGGER fail_first_launch ON batch.job_executions;
        DROP FUNCTION public.fail_first_launch(); DROP SEQUENCE public.launch_failures`);
      await schedules.delete('hourly').catch(() => undefined);
    }
  });
});

async function countOf(db: TestDatabase, table: string): Promise<number> {
  return Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0].n);
}

/** The `scheduledAt` of the executions launched with `to` = `to`, in order. */
async function scheduledTicks(db: TestDatabase, to = 10): Promise<string[]> {
  const rows = await db.query<{ at: string }>(
    `SELECT e.parameters->>'scheduledAt' AS at FROM batch.job_executions e
      WHERE e.parameters->>'scheduledAt' IS NOT NULL AND (e.parameters->>'to')::int = $1 ORDER BY 1`,
    [to],
  );
  return rows.map((r) => r.at);
}
