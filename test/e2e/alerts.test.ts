import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { IJobAlert, IJobExecution, IJobFinishedEvent } from '../../src/interfaces/job.interfaces';
import { TestDb } from '../support/harness';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';

/** A call the webhook received, when, and what it answered (null while it holds the call open). */
interface Call {
  path: string;
  at: number;
  delivery: string;
  body: { text: string; alert: string; event: IJobFinishedEvent };
  answered: number | null;
}

/**
 * A webhook on this machine: each path answers as `answers` says for its n-th call (a status, or `hold` to keep the
 * call open until the test releases it), 200 by default.
 */
class Webhook {
  readonly calls: Call[] = [];
  private readonly held: { call: Call; response: ServerResponse }[] = [];
  private server!: Server;
  url = '';

  constructor(private readonly answers: Record<string, (n: number) => number | 'hold'>) {}

  async start(): Promise<void> {
    this.server = createServer((request, response) => void this.answer(request, response));
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  private async answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of request) text += String(chunk);
    const path = request.url ?? '';
    const call: Call = {
      path,
      at: Date.now(),
      delivery: String(request.headers['x-batch-delivery']),
      body: JSON.parse(text) as Call['body'],
      answered: null,
    };
    this.calls.push(call);
    const answer = this.answers[path]?.(this.to(path).length) ?? 200;
    if (answer === 'hold') return void this.held.push({ call, response });
    call.answered = answer;
    response.writeHead(answer).end();
  }

  to(path: string): Call[] {
    return this.calls.filter((call) => call.path === path);
  }

  release(status: number): void {
    for (const { call, response } of this.held.splice(0)) {
      call.answered = status;
      response.writeHead(status).end();
    }
  }

  async stop(): Promise<void> {
    this.release(200);
    this.server.closeAllConnections();
    this.server.close();
  }
}

/**
 * Job alerts on the built service: webhooks an admin points jobs at, called from the outbox of deliveries that
 * batch.job_finished writes as an execution ends; retried with back-off until a 2xx (at least once), given up after
 * BATCH_ALERT_MAX_ATTEMPTS, never holding back a job; and the routes an admin's only.
 */
describe('job alerts (built service, a webhook on this machine)', () => {
  const RETRY_MS = 150;
  let service: ServiceProcess;
  let db: TestDb;
  let nightly: string;
  let other: string;
  const webhook = new Webhook({
    '/flaky': (n) => (n <= 2 ? 500 : 200),
    '/hang': (n) => (n === 1 ? 'hold' : 200),
    '/down': () => 503,
  });

  const alert = (name: string, body: unknown, key = service.adminKey) =>
    http<IJobAlert>(service, 'PUT', `/api/jobs/alerts/${name}`, key, body);
  const alerts = async () => (await http<IJobAlert[]>(service, 'GET', '/api/jobs/alerts', service.adminKey)).body;
  /** Launches a copy of `source` into `dst` (whose check refuses id 50) as `key`; the execution once it ended. */
  const copy = async (key: string, runId: string, options: Record<string, unknown> = {}, source = 'public.src') => {
    const launched = await http<IJobExecution>(service, 'POST', '/api/jobs/copy/executions', key, {
      parameters: { source, target: 'public.dst', mode: 'upsert', runId },
      options,
    });
    assert.equal(launched.status, 202, JSON.stringify(launched.body));
    return eventually(
      async () => {
        const { body } = await http<IJobExecution>(service, 'GET', `/api/jobs/executions/${launched.body.id}`, key);
        return body.endedAt ? body : undefined;
      },
      30_000,
      `execution ${launched.body.id} to end`,
    );
  };
  const deliveries = (alertName: string) =>
    db.query<{ execution_id: string; attempts: number; delivered: boolean; failed: boolean; last_error: string }>(
      `SELECT execution_id, attempts, delivered_at IS NOT NULL AS delivered, failed_at IS NOT NULL AS failed, last_error
         FROM batch.alert_deliveries WHERE alert = $1 ORDER BY id`,
      [alertName],
    );

  before(async () => {
    await webhook.start();
    service = await startService(
      serviceEnv({
        BATCH_JOB_POLL_INTERVAL: '100',
        BATCH_ALERT_RETRY_MS: String(RETRY_MS),
        BATCH_ALERT_MAX_ATTEMPTS: '4',
        // long enough that the held call is surely still open when the copy launched meanwhile has ended
        BATCH_ALERT_TIMEOUT_MS: '60000',
      }),
    );
    db = new TestDb(service.env.DB_NAME);
    await db.query(
      `CREATE TABLE src (id int PRIMARY KEY, note text); CREATE TABLE good (id int PRIMARY KEY, note text);
       CREATE TABLE dst (id int PRIMARY KEY, note text, CONSTRAINT not_50 CHECK (id <> 50));
       INSERT INTO src SELECT g, 'note ' || g FROM generate_series(1, 100) g;
       INSERT INTO good SELECT g, 'note ' || g FROM generate_series(1, 40) g`,
    );
    const client = async (name: string) => {
      const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
        name,
        targets: ['public.dst'],
        sources: ['public.src', 'public.good'],
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.apiKey;
    };
    nightly = await client('nightly');
    other = await client('other');
  });

  after(async () => {
    await webhook.stop();
    await db?.close();
    await service?.destroy();
  });

  it("is an admin's: a client can neither create, list nor delete one, and no job takes a URL", async () => {
    const body = { url: `${webhook.url}/flaky`, client: 'nightly' };
    for (const [method, path] of [
      ['PUT', '/api/jobs/alerts/mine'],
      ['GET', '/api/jobs/alerts'],
      ['DELETE', '/api/jobs/alerts/mine'],
    ]) {
      const refused = await http<{ code: string }>(service, method, path, nightly, method === 'PUT' ? body : undefined);
      assert.deepEqual([refused.status, refused.body.code], [403, 'FORBIDDEN'], `${method} ${path}`);
    }
    assert.deepEqual(await alerts(), [], 'nothing stored');
    const launched = await http<{ code: string }>(service, 'POST', '/api/jobs/copy/executions', nightly, {
      parameters: { source: 'public.src', target: 'public.dst' },
      options: { webhook: `${webhook.url}/flaky` },
    });
    assert.deepEqual([launched.status, launched.body.code], [400, 'VALIDATION_FAILED']);
  });

  it('refuses what it could not call or match: not http(s), credentials, unknown exits, jobs and clients', async () => {
    const cases: [unknown, number, string][] = [
      [{ url: 'ftp://127.0.0.1/hook' }, 400, 'VALIDATION_FAILED'],
      [{ url: 'hooks.example/no-scheme' }, 400, 'VALIDATION_FAILED'],
      [{ url: 'http://user:secret@127.0.0.1/hook' }, 400, 'VALIDATION_FAILED'],
      [{ url: `${webhook.url}/a\u0000b` }, 400, 'VALIDATION_FAILED'],
      [{ url: `${webhook.url}/x`, on: ['STOPPED'] }, 400, 'VALIDATION_FAILED'],
      [{ url: `${webhook.url}/x`, on: [] }, 400, 'VALIDATION_FAILED'],
      [{ url: `${webhook.url}/x`, client: 'nobody' }, 400, 'VALIDATION_FAILED'],
      [{ url: `${webhook.url}/x`, extra: 1 }, 400, 'VALIDATION_FAILED'],
      [{ url: `${webhook.url}/x`, job: 'nope' }, 404, 'NOT_FOUND'],
    ];
    for (const [body, status, code] of cases) {
      const refused = await alert('bad', body);
      assert.deepEqual(
        [refused.status, (refused.body as unknown as { code: string }).code],
        [status, code],
        JSON.stringify(body),
      );
    }
    assert.deepEqual(await alerts(), []);
  });

  it('calls the webhook when an execution of the client ends FAILED, again with back-off until it answers 2xx', async () => {
    const put = await alert('nightly-failures', { url: `${webhook.url}/flaky`, client: 'nightly' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(
      [put.body.job, put.body.client, put.body.on, put.body.lastDelivery],
      [null, 'nightly', ['FAILED'], null],
    );

    const completed = await copy(nightly, 'fine', {}, 'public.good');
    assert.equal(completed.status, 'COMPLETED');
    const failed = await copy(nightly, 'first');
    assert.equal(failed.status, 'FAILED', JSON.stringify(failed.exitStatus));
    // The service records the delivery once the answer reaches it, a moment after the webhook has answered.
    const delivered = await eventually(async () => {
      const rows = await deliveries('nightly-failures');
      return rows.some((row) => row.delivered) ? rows : undefined;
    }, 30_000);

    const calls = webhook.to('/flaky');
    assert.deepEqual(
      calls.map((c) => c.answered),
      [500, 500, 200],
      'called until it answered 2xx, and not after',
    );
    assert.equal(new Set(calls.map((c) => c.delivery)).size, 1, 'one delivery, called three times');
    assert.ok(calls[1].at - calls[0].at >= RETRY_MS * 0.8, 'the second call after the back-off');
    assert.ok(calls[2].at - calls[1].at >= RETRY_MS * 2 * 0.8, 'the third after twice as long');
    const { body } = calls[2];
    assert.equal(body.alert, 'nightly-failures');
    assert.deepEqual(
      [body.event.type, body.event.executionId, body.event.status, body.event.client, body.event.parameters.runId],
      ['job.finished', failed.id, 'FAILED', 'nightly', 'first'],
      'the job.finished notification of the failed execution, not of the completed one',
    );
    assert.match(body.text, new RegExp(`^Job copy, execution ${failed.id} of client nightly, ended FAILED: `));
    assert.match(body.text, /source public\.src, target public\.dst, mode upsert, runId first; \d+ read/);
    assert.deepEqual(delivered, [
      { execution_id: failed.id, attempts: 3, delivered: true, failed: false, last_error: 'answered 500' },
    ]);
    const [listed] = await alerts();
    assert.deepEqual(
      [listed.lastDelivery?.executionId, listed.lastDelivery?.status, listed.lastDelivery?.attempts],
      [failed.id, 'DELIVERED', 3],
    );
  });

  it('calls it for COMPLETED_WITH_SKIPS only where asked', async () => {
    await alert('copy-skips', { url: `${webhook.url}/skips`, job: 'copy', on: ['COMPLETED_WITH_SKIPS'] });
    const skipped = await copy(nightly, 'skips', { skipLimit: 5 });
    assert.equal(skipped.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    await eventually(async () => (webhook.to('/skips').length > 0 ? true : undefined), 15_000);
    const [call] = webhook.to('/skips');
    assert.deepEqual(
      [call.body.event.executionId, call.body.event.exitStatus.code],
      [skipped.id, 'COMPLETED_WITH_SKIPS'],
    );
    assert.match(call.body.text, /ended COMPLETED_WITH_SKIPS \(.*; \d+ read, \d+ written, 1 skipped\)$/);
    assert.deepEqual(
      (await deliveries('nightly-failures')).map((d) => d.execution_id),
      [webhook.to('/flaky')[0].body.event.executionId],
      'the alert on FAILED is not called for an execution with skips',
    );
  });

  it('holds back no job while a webhook does not answer, and gives up after BATCH_ALERT_MAX_ATTEMPTS', async () => {
    await alert('other-failures', { url: `${webhook.url}/hang`, client: 'other' });
    const failed = await copy(other, 'hung');
    assert.equal(failed.status, 'FAILED');
    await eventually(async () => (webhook.to('/hang').length > 0 ? true : undefined), 15_000);
    const meanwhile = await copy(other, 'meanwhile', {}, 'public.good');
    assert.equal(meanwhile.status, 'COMPLETED');
    assert.equal(webhook.to('/hang')[0].answered, null, 'completed while the webhook held its call');
    webhook.release(204);
    await eventually(async () => ((await deliveries('other-failures'))[0]?.delivered ? true : undefined), 15_000);

    await alert('other-failures', { url: `${webhook.url}/down`, client: 'other' });
    const again = await copy(other, 'down');
    assert.equal(again.status, 'FAILED');
    const given = await eventually(async () => {
      const [, last] = await deliveries('other-failures');
      return last?.failed ? last : undefined;
    }, 30_000);
    assert.deepEqual(given, {
      execution_id: again.id,
      attempts: 4,
      delivered: false,
      failed: true,
      last_error: 'answered 503',
    });
    assert.equal(webhook.to('/down').length, 4, 'four calls, then none');
    const listed = (await alerts()).find((a) => a.name === 'other-failures')!;
    assert.deepEqual([listed.lastDelivery?.status, listed.lastDelivery?.nextAttemptAt], ['FAILED', null]);
    assert.doesNotMatch(service.logs(), /\/down/, 'the log names the host, never the path');
    assert.match(service.logs(), /given up after 4 calls/);

    const deleted = await http(service, 'DELETE', '/api/jobs/alerts/other-failures', service.adminKey);
    assert.equal(deleted.status, 204);
    assert.deepEqual(await deliveries('other-failures'), [], 'its deliveries go with it');
    assert.equal((await http(service, 'DELETE', '/api/jobs/alerts/other-failures', service.adminKey)).status, 404);
  });
});
