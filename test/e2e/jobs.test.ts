import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  BatchServiceClient,
  BatchServiceError,
  IJobDefinitionList,
  IJobExecution,
  IJobFinishedEvent,
  JobFinishedConsumer,
} from '../../src/client';
import { createCaller, TestDb, type Caller } from '../support/harness';
import { deliveredEvents } from '../support/raw-rpc';
import { eventually, http, RMQ_URL, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

const TABLE = `(id int PRIMARY KEY, qty int, price numeric(12,2), note text, at timestamptz)`;

/**
 * Jobs as another service and an operator use them, on the built service: launch by REST and RPC (the client
 * package), job.finished, metrics, bad input refused before anything runs, one client's executions hidden from
 * another, and the operation queue served while a copy runs.
 */
describe('jobs (built service, real broker and database)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let copier: { key: string; rpc: BatchServiceClient };
  let other: { key: string };
  let finished: IJobFinishedEvent[];
  let consumer: JobFinishedConsumer;

  before(async () => {
    service = await startService(serviceEnv({ BATCH_JOB_POLL_INTERVAL: '100' }));
    db = new TestDb(service.env.DB_NAME);
    await db.query(
      `CREATE TABLE src ${TABLE}; CREATE TABLE dst ${TABLE}; CREATE TABLE secret ${TABLE};
       CREATE TABLE big ${TABLE}; CREATE TABLE big_copy ${TABLE}; CREATE TABLE events (id bigserial PRIMARY KEY, ref int)`,
    );
    await db.query(`INSERT INTO src SELECT g, g % 100, g / 7.0, 'note ' || g, now() FROM generate_series(1, 200000) g`);
    const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'copier',
      targets: ['public.dst', 'public.big_copy', 'public.events', 'public.ghost', 'public.checked', 'public.slow_dst'],
      sources: ['public.src', 'public.big', 'public.ghost'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const rpc = new BatchServiceClient({
      url: RMQ_URL,
      queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
      apiKey: created.body.apiKey,
    });
    copier = { key: created.body.apiKey, rpc };
    const second = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'other',
      targets: ['public.secret'],
      sources: ['public.src'],
    });
    other = { key: second.body.apiKey };
    finished = [];
    consumer = new JobFinishedConsumer({
      url: RMQ_URL,
      exchange: service.env.BATCH_SERVICE_EVENTS_EXCHANGE,
      client: 'copier',
    });
    await consumer.start((event) => void finished.push(event));
  });

  after(async () => {
    await consumer?.stop();
    await copier?.rpc.close();
    await db?.close();
    await service?.destroy();
  });

  it('a copy launched over RPC completes; the caller hears job.finished; the target equals the source', async () => {
    const launched = await copier.rpc.launchJob(
      'copy',
      { source: 'public.src', target: 'public.dst', to: 100000 },
      { chunkSize: 7000 },
    );
    assert.equal(launched.status, 'STARTING');
    assert.equal(launched.client, 'copier');
    const done = await copier.rpc.waitForJobExecution(launched.id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual(done.exitStatus, { code: 'COMPLETED', description: null });
    assert.deepEqual(
      [done.steps[0].readCount, done.steps[0].writeCount, done.steps[0].commitCount],
      [100000, 100000, 15],
    );
    assert.deepEqual(
      done.progress && [done.progress.done, done.progress.total, done.progress.etaSeconds],
      [100000, 100000, 0],
    );
    assert.equal(
      await db.count(`SELECT count(*) AS n FROM (SELECT * FROM src WHERE id <= 100000 EXCEPT SELECT * FROM dst) d`),
      0,
    );
    assert.equal(await db.count(`SELECT count(*) AS n FROM dst`), 100000);

    const event = await eventually(async () => finished.find((e) => e.executionId === launched.id));
    assert.deepEqual(
      { ...event, startedAt: typeof event.startedAt, endedAt: typeof event.endedAt },
      {
        type: 'job.finished',
        client: 'copier',
        executionId: launched.id,
        job: 'copy',
        instanceId: launched.instanceId,
        parameters: { source: 'public.src', target: 'public.dst', to: 100000 },
        status: 'COMPLETED',
        exitStatus: { code: 'COMPLETED', description: null },
        readCount: 100000,
        writeCount: 100000,
        skipCount: 0,
        startedAt: 'string',
        endedAt: 'string',
      },
    );

    const again = await copier.rpc.launchJob('copy', { source: 'public.src', target: 'public.dst', to: 100000 }).then(
      () => assert.fail('a completed instance runs once'),
      (e: BatchServiceError) => e,
    );
    assert.equal(again.code, 'CONFLICT');
    assert.deepEqual(again.details, { reason: 'JOB_INSTANCE_COMPLETE', executionId: launched.id });

    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(metrics, /batch_job_executions\{job="copy",status="COMPLETED"\} 1/);
    assert.match(metrics, /batch_job_rows_total\{job="copy"\} 100000/);
  });

  it('REST: launch an upsert, list, get; another client sees none of it', async () => {
    const launched = await http<IJobExecution>(service, 'POST', '/api/jobs/copy/executions', copier.key, {
      parameters: { source: 'public.src', target: 'public.dst', mode: 'upsert', from: '99000', to: 101000 },
      options: { chunkSize: 500, partitions: 2 },
    });
    assert.equal(launched.status, 202, JSON.stringify(launched.body));
    const done = await eventually(async () => {
      const { body } = await http<IJobExecution>(
        service,
        'GET',
        `/api/jobs/executions/${launched.body.id}`,
        copier.key,
      );
      return body.status === 'COMPLETED' ? body : undefined;
    });
    assert.equal(done.steps[0].writeCount, 2000);
    assert.equal(await db.count(`SELECT count(*) AS n FROM dst`), 101000);

    const list = await http<{ items: IJobExecution[] }>(service, 'GET', '/api/jobs/executions?job=copy', copier.key);
    assert.deepEqual(list.body.items.map((e) => e.id).slice(0, 1), [launched.body.id]);
    const foreign = await http<{ items: IJobExecution[] }>(service, 'GET', '/api/jobs/executions', other.key);
    assert.deepEqual(foreign.body.items, []);
    for (const action of ['', '/stop', '/restart', '/abandon', '/rejects']) {
      const method = action && action !== '/rejects' ? 'POST' : 'GET';
      const seen = await http<{ code: string }>(
        service,
        method,
        `/api/jobs/executions/${launched.body.id}${action}`,
        other.key,
      );
      assert.deepEqual([seen.status, seen.body.code], [404, 'NOT_FOUND'], action);
    }
    const admin = await http<IJobExecution>(
      service,
      'GET',
      `/api/jobs/executions/${launched.body.id}`,
      service.adminKey,
    );
    assert.equal(admin.body.client, 'copier');
  });

  it('bad input is refused with the contract code and launches nothing', async () => {
    const executions = () => db.count(`SELECT count(*) AS n FROM batch.job_executions`);
    const before = await executions();
    const launch = (job: string, body: unknown, key = copier.key) =>
      http<{ code: string; details?: unknown }>(service, 'POST', `/api/jobs/${job}/executions`, key, body);
    const copy = (parameters: Record<string, unknown>, options: Record<string, unknown> = {}) =>
      launch('copy', { parameters: { source: 'public.src', target: 'public.dst', ...parameters }, options });
    const cases: [Promise<{ status: number; body: { code: string } }>, number, string][] = [
      [launch('nope', { parameters: {} }), 404, 'NOT_FOUND'],
      [launch('copy', { parameters: { source: 'public.src' } }), 400, 'VALIDATION_FAILED'],
      [copy({ runId: 1, unknown: 'x' }), 400, 'VALIDATION_FAILED'],
      [copy({ mode: 'merge' }), 400, 'VALIDATION_FAILED'],
      [copy({ from: { deep: { nested: 1 } } }), 400, 'VALIDATION_FAILED'],
      [copy({}, { chunkSize: -1 }), 400, 'VALIDATION_FAILED'],
      [copy({}, { partitions: 10_000 }), 400, 'VALIDATION_FAILED'],
      [copy({ from: 'ten' }), 400, 'VALIDATION_FAILED'],
      [copy({ from: 10, to: 5 }), 400, 'VALIDATION_FAILED'],
      [copy({ target: 'public.secret' }), 403, 'FORBIDDEN'],
      [copy({ source: 'public.secret' }), 403, 'FORBIDDEN'],
      [copy({ source: 'batch.clients' }), 403, 'FORBIDDEN'],
      [copy({ target: 'public.nothing' }), 403, 'FORBIDDEN'],
      [copy({ target: 'public.ghost' }), 400, 'UNKNOWN_TARGET'],
      [copy({ source: 'public.ghost' }), 400, 'UNKNOWN_TARGET'],
      [copy({ columns: { nope: 'id' } }), 400, 'UNKNOWN_COLUMN'],
      [copy({ columns: { note: 'nope' } }), 400, 'UNKNOWN_COLUMN'],
      [copy({ keyColumn: 'nope' }), 400, 'UNKNOWN_COLUMN'],
      [copy({ target: 'public.dst\u0000' }), 400, 'VALIDATION_FAILED'],
      [launch('copy', '{"parameters": [1, 2]}'), 400, 'VALIDATION_FAILED'],
      [launch('copy', 'not json'), 400, 'VALIDATION_FAILED'],
      [
        launch('copy', { parameters: { source: 'public.src', target: 'public.dst' } }, 'bsk_not-a-key'),
        401,
        'UNAUTHENTICATED',
      ],
    ];
    for (const [answer, status, code] of cases) {
      const { status: got, body } = await answer;
      assert.deepEqual([got, body.code], [status, code], JSON.stringify(body));
    }
    const wrongStatus = await http<{ code: string; details: { reason: string } }>(
      service,
      'POST',
      `/api/jobs/executions/1/stop`,
      copier.key,
    );
    assert.deepEqual([wrongStatus.status, wrongStatus.body.details.reason], [409, 'WRONG_STATUS']);
    for (const id of ['999999', 'abc', '-1', '1e3']) {
      const { status } = await http(service, 'GET', `/api/jobs/executions/${id}`, copier.key);
      assert.ok(status === 404 || status === 400, `${id}: ${status}`);
    }

    const schedule = (body: Record<string, unknown>) =>
      http<{ code: string }>(service, 'PUT', '/api/jobs/schedules/nightly', service.adminKey, {
        job: 'copy',
        cron: '0 3 * * *',
        client: 'copier',
        parameters: { source: 'public.src', target: 'public.dst', mode: 'upsert' },
        ...body,
      });
    for (const [body, code] of [
      [{ cron: 'every day' }, 'VALIDATION_FAILED'],
      [{ cron: '*/0 * * * *' }, 'VALIDATION_FAILED'],
      [{ cron: '* * * * * * *' }, 'VALIDATION_FAILED'],
      [{ timeZone: 'Mars/Olympus' }, 'VALIDATION_FAILED'],
      [{ client: 'nobody' }, 'VALIDATION_FAILED'],
      [{ job: 'nope' }, 'NOT_FOUND'],
      [{ parameters: { source: 'public.src', target: 'public.secret' } }, 'FORBIDDEN'],
      [{ parameters: { source: 'public.src', target: 'public.dst', scheduledAt: 'x' } }, 'VALIDATION_FAILED'],
    ] as const) {
      const answer = await schedule(body);
      assert.equal(answer.body.code, code, `${JSON.stringify(body)}: ${JSON.stringify(answer.body)}`);
    }
    const notAdmin = await http<{ code: string }>(service, 'GET', '/api/jobs/schedules', copier.key);
    assert.equal(notAdmin.status, 403);
    const kept = await schedule({ timeZone: 'Europe/Berlin' });
    assert.equal(kept.status, 200, JSON.stringify(kept.body));
    assert.equal((await http(service, 'DELETE', '/api/jobs/schedules/nightly', service.adminKey)).status, 204);
    assert.equal((await http(service, 'DELETE', '/api/jobs/schedules/nightly', service.adminKey)).status, 404);

    for (const payload of [{ job: 'copy', parameters: 'x' }, { job: 42 }, { job: 'copy', parameters: { source: 1 } }]) {
      const refused = await copier.rpc.launchJob(payload.job as string, payload.parameters as never).then(
        () => assert.fail(JSON.stringify(payload)),
        (e: BatchServiceError) => e.code,
      );
      assert.equal(refused, 'VALIDATION_FAILED', JSON.stringify(payload));
    }
    assert.equal(await executions(), before, 'nothing was launched');
  });

  it('the lifecycle over RPC and REST: definitions, a failed copy, its rejects, restart, abandon, stop', async () => {
    await db.query(
      `CREATE TABLE checked (id int PRIMARY KEY, qty int CHECK (qty < 15), price numeric(12,2), note text, at timestamptz);
       CREATE TABLE slow_dst ${TABLE}`,
    );
    // every job.finished of the copier, as the broker delivers it: persistent, under the copier's routing key
    const copierEvents = await deliveredEvents<IJobFinishedEvent>(
      service.env.BATCH_SERVICE_EVENTS_EXCHANGE,
      'jobs.finished.copier',
    );
    const { delivered } = copierEvents;
    try {
      const heard = (id: string, status: string) =>
        eventually(async () => (finished.find((e) => e.executionId === id && e.status === status) ? true : undefined));

      // the definitions, the same over RPC and REST
      const defined = await copier.rpc.listJobs();
      const rest = await http<IJobDefinitionList>(service, 'GET', '/api/jobs', copier.key);
      assert.equal(rest.status, 200);
      assert.deepEqual(rest.body, JSON.parse(JSON.stringify(defined)));
      const copy = defined.jobs.find((job) => job.name === 'copy');
      assert.ok(copy && defined.jobs.some((job) => job.name === 'import'));
      assert.ok(copy.description.length > 0 && copy.steps.length > 0);
      const parameter = (name: string) => copy.parameters.find((p) => p.name === name);
      assert.deepEqual([parameter('source')?.type, parameter('source')?.required], ['string', true]);
      assert.deepEqual([parameter('mode')?.default, parameter('from')?.type], ['insert', 'key']);
      assert.deepEqual(
        copy.options.find((o) => o.name === 'skipLimit'),
        { name: 'skipLimit', type: 'integer', required: false, default: 0, description: 'rows the target may refuse' },
      );

      // a copy whose target refuses rows 15…20: the third refusal is one more than skipLimit allows
      const parameters = { source: 'public.src', target: 'public.checked', from: 0, to: 20 };
      const failed = await copier.rpc.launchJob('copy', parameters, { skipLimit: 2 });
      const first = await copier.rpc.waitForJobExecution(failed.id, { intervalMs: 100, timeoutMs: 60_000 });
      assert.deepEqual([first.status, first.exitStatus?.code, first.restartable], ['FAILED', 'FAILED', true]);
      const rejects = await copier.rpc.getJobRejects(failed.id, { limit: 2 });
      assert.deepEqual(
        rejects.items.map((r) => [r.record, r.code]),
        [
          ['id = 15', '23514'],
          ['id = 16', '23514'],
        ],
      );
      const rest2 = await copier.rpc.getJobRejects(failed.id, { cursor: rejects.nextCursor! });
      assert.deepEqual([rest2.items.map((r) => r.record), rest2.nextCursor], [['id = 17'], null]);
      const csv = await fetch(`${service.url}/api/jobs/executions/${failed.id}/rejects?limit=2`, {
        headers: { 'x-api-key': copier.key, accept: 'text/csv' },
      });
      assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
      assert.equal(csv.headers.get('x-next-cursor'), rejects.nextCursor);
      const lines = (await csv.text()).split('\r\n');
      assert.equal(lines[0], 'line,byteOffset,column,code,message,record');
      assert.equal(lines.length, 4, 'a header, two rejects and the final line end');
      const message = rejects.items[0].message;
      assert.equal(lines[1], `,,,23514,"${message.replace(/"/g, '""')}",id = 15`);
      await heard(failed.id, 'FAILED');

      // restarted by REST: a new execution of the same instance, which fails the same way
      const restarted = await http<IJobExecution>(
        service,
        'POST',
        `/api/jobs/executions/${failed.id}/restart`,
        copier.key,
      );
      assert.equal(restarted.status, 202, JSON.stringify(restarted.body));
      assert.notEqual(restarted.body.id, failed.id);
      assert.deepEqual([restarted.body.instanceId, restarted.body.startCount], [failed.instanceId, 2]);
      const second = await copier.rpc.waitForJobExecution(restarted.body.id, { intervalMs: 100, timeoutMs: 60_000 });
      assert.equal(second.status, 'FAILED');
      const instance = await copier.rpc.listJobExecutions({ instanceId: failed.instanceId });
      assert.deepEqual(
        instance.items.map((e) => [e.id, e.status]),
        [
          [second.id, 'FAILED'],
          [failed.id, 'FAILED'],
        ],
      );

      // abandoned over RPC: its instance never runs again, neither launched nor restarted
      const abandoned = await copier.rpc.abandonJobExecution(second.id);
      assert.equal(abandoned.status, 'ABANDONED');
      await heard(second.id, 'ABANDONED');
      const relaunched = await copier.rpc.launchJob('copy', parameters).then(
        () => assert.fail('an abandoned instance runs no more'),
        (e: BatchServiceError) => e,
      );
      assert.deepEqual(
        [relaunched.code, relaunched.details],
        ['CONFLICT', { reason: 'JOB_INSTANCE_COMPLETE', executionId: second.id }],
      );
      const restartedAgain = await http<{ code: string }>(
        service,
        'POST',
        `/api/jobs/executions/${second.id}/restart`,
        copier.key,
      );
      assert.deepEqual([restartedAgain.status, restartedAgain.body.code], [409, 'CONFLICT']);

      // stopped over RPC at a chunk boundary: the chunks committed stay; then abandoned by REST
      const long = await copier.rpc.launchJob(
        'copy',
        { source: 'public.src', target: 'public.slow_dst' },
        { chunkSize: 200 },
      );
      await eventually(async () =>
        (await copier.rpc.getJobExecution(long.id)).steps[0]?.commitCount > 0 ? true : undefined,
      );
      const stopping = await copier.rpc.stopJobExecution(long.id);
      assert.ok(['STOPPING', 'STOPPED'].includes(stopping.status), stopping.status);
      const stopped = await copier.rpc.waitForJobExecution(long.id, { intervalMs: 100, timeoutMs: 60_000 });
      assert.deepEqual([stopped.status, stopped.exitStatus?.code], ['STOPPED', 'STOPPED']);
      assert.ok(stopped.steps[0].writeCount < 200000, 'stopped before the end');
      assert.equal(await db.count(`SELECT count(*) AS n FROM slow_dst`), stopped.steps[0].writeCount);
      await heard(long.id, 'STOPPED');
      const gone = await http<IJobExecution>(service, 'POST', `/api/jobs/executions/${long.id}/abandon`, copier.key);
      assert.deepEqual([gone.status, gone.body.status], [200, 'ABANDONED']);
      await heard(long.id, 'ABANDONED');
      const byStatus = await copier.rpc.listJobExecutions({ job: 'copy', status: 'ABANDONED' });
      assert.deepEqual(
        byStatus.items.map((e) => e.id),
        [long.id, second.id],
      );

      const ends = [failed.id, second.id, second.id, long.id, long.id];
      await eventually(async () => (delivered.length >= ends.length ? true : undefined));
      for (const message of delivered) {
        assert.deepEqual([message.routingKey, message.deliveryMode], ['jobs.finished.copier', 2]);
      }
      assert.deepEqual(
        delivered.map((m) => [m.event.executionId, m.event.status]).filter(([id]) => ends.includes(id)),
        [
          [failed.id, 'FAILED'],
          [second.id, 'FAILED'],
          [second.id, 'ABANDONED'],
          [long.id, 'STOPPED'],
          [long.id, 'ABANDONED'],
        ],
      );
    } finally {
      await copierEvents.close();
    }
  });

  it('the operation queue is served while a long copy runs', async () => {
    await db.query(`INSERT INTO big SELECT g, g, g, 'n', now() FROM generate_series(1, 600000) g`);
    const caller: Caller = await createCaller(service, 'producer', ['events']);
    try {
      const copy = await copier.rpc.launchJob(
        'copy',
        { source: 'public.big', target: 'public.big_copy' },
        { chunkSize: 2000 },
      );
      await eventually(async () =>
        (await copier.rpc.getJobExecution(copy.id)).status === 'STARTED' ? true : undefined,
      );
      const created = await caller.rpc.createOperation({ target: 'events', type: 'insert', values: { ref: 1 } });
      await eventually(async () => (caller.notified.has(created.id) ? true : undefined), 20_000, 'the notification');
      const during = await copier.rpc.getJobExecution(copy.id);
      assert.equal(during.status, 'STARTED', 'the operation settled while the copy was still running');
      assert.ok((during.progress?.done ?? 0) < 600000);
      const done = await copier.rpc.waitForJobExecution(copy.id, { intervalMs: 200, timeoutMs: 120_000 });
      assert.equal(done.status, 'COMPLETED');
    } finally {
      await caller.close();
    }
  });
});
