import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BrowserContext, chromium, Locator, Page } from 'playwright-core';
import type { IJobExecution, IJobRejectList, IJobSchedule } from '../../src/interfaces/job.interfaces';
import { findChromium, HOW_TO_GET_A_BROWSER } from '../support/browser';
import { createCaller, settleAll, TestDb, type Caller } from '../support/harness';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

const CHROMIUM = findChromium();
/**
 * Without a browser this test says why it did not run and how to get one, and passes: `npm test` needs nothing that
 * `npm install` does not bring. `.ci/run` installs a browser and sets BATCH_TEST_REQUIRE_BROWSER=1, so there a missing
 * one fails.
 */
const NO_BROWSER = CHROMIUM === null && process.env.BATCH_TEST_REQUIRE_BROWSER !== '1' ? HOW_TO_GET_A_BROWSER : false;
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOT = join(process.cwd(), 'test-output', 'dashboard.png');
/** A unique constraint whose name is markup: its violation message must be shown as text, never as HTML. */
const MARKUP_CONSTRAINT = 'seat <b>taken</b>';

/** Polls until `actual()` deep-equals `expected()`; on timeout fails with both. */
async function until<T>(
  actual: () => Promise<T>,
  expected: () => Promise<T>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [shown, wanted] = await Promise.all([actual(), expected()]);
    try {
      assert.deepEqual(shown, wanted);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A schedule far enough ahead to stay pending through the test, within BATCH_NOT_BEFORE_MAX_DAYS. */
const MONTH_AHEAD = new Date(Date.now() + 30 * 86_400_000).toISOString();
const number = (text: string | null) => Number((text ?? '').replace(/,/g, ''));

/** A time as the page shows a schedule's ticks: to the second, in the schedule's time zone. */
function inZone(iso: string, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(new Date(iso))
      .map((part) => [part.type, part.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}`;
}

/** The parameters a job row shows, by name, each value whole. */
function parametersShown(row: Locator): Promise<Record<string, string>> {
  return row
    .getByTestId('job-parameter')
    .evaluateAll((items) =>
      Object.fromEntries(items.map((i) => [i.getAttribute('data-name'), i.getAttribute('data-value')])),
    );
}

/**
 * The dashboard at `GET /` as an operator uses it: the built service, real operations (one of them refused by a
 * unique constraint, one by a check), driven in headless Chromium; what it shows is compared with batch.operations.
 */
describe('dashboard: GET / in a browser (built service, real database and broker)', { skip: NO_BROWSER }, () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let caller: Caller;
  let browser: BrowserContext;
  let page: Page;
  let userDataDir: string;
  const pageErrors: string[] = [];
  let doubleBooking: string;
  let archivistKey: string;
  let negativePrice: string;

  before(async () => {
    service = await startService(serviceEnv());
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.seats (id int PRIMARY KEY, seat text NOT NULL, price numeric(8,2) NOT NULL DEFAULT 10 CHECK (price >= 0),
                    CONSTRAINT "${MARKUP_CONSTRAINT}" UNIQUE (seat))`);
    await db.query(
      `CREATE TABLE public.tickets (id int PRIMARY KEY, seat_id int NOT NULL, sold_at timestamptz DEFAULT now())`,
    );
    caller = await createCaller(service, 'box_office', ['seats', 'tickets']);

    await caller.rpc.createOperations(
      Array.from({ length: 20 }, (_, i) => ({
        target: 'seats',
        type: 'insert' as const,
        values: { id: i + 1, seat: `A${i + 1}` },
        label: 'SEAT_PLAN',
      })),
    );
    await caller.rpc.createOperations(
      Array.from({ length: 12 }, (_, i) => ({
        target: 'tickets',
        type: 'insert' as const,
        values: { id: i + 1, seat_id: i + 1 },
        label: 'SELL',
      })),
    );
    await caller.rpc.createOperation({
      target: 'seats',
      type: 'update',
      key: { id: 3 },
      values: { price: 25.5 },
      label: 'REPRICE',
    });
    await caller.rpc.createOperation({ target: 'tickets', type: 'delete', key: { id: 12 }, label: 'REFUND' });
    doubleBooking = (
      await caller.rpc.createOperation({
        target: 'seats',
        type: 'insert',
        values: { id: 21, seat: 'A1' },
        label: 'DOUBLE_BOOKING',
      })
    ).id;
    negativePrice = (
      await caller.rpc.createOperation({
        target: 'seats',
        type: 'update',
        key: { id: 4 },
        values: { price: -1 },
        label: 'REPRICE',
      })
    ).id;
    const later = await caller.rpc.createOperation({
      target: 'tickets',
      type: 'insert',
      values: { id: 99, seat_id: 5 },
      notBefore: MONTH_AHEAD,
    });
    await caller.rpc.cancelOperation(later.id);
    const settled = await settleAll(db, caller);
    assert.deepEqual(
      settled.filter((o) => o.status === 'FAILED').map((o) => o.id),
      [doubleBooking, negativePrice],
    );
    // one that stays PENDING, so that every status shows a count
    await caller.rpc.createOperation({
      target: 'tickets',
      type: 'insert',
      values: { id: 100, seat_id: 6 },
      notBefore: MONTH_AHEAD,
      label: 'PRESALE',
    });

    userDataDir = mkdtempSync(join(tmpdir(), 'batch-dashboard-'));
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM ?? undefined,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1360, height: 900 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/Failed to load resource/.test(message.text()))
        pageErrors.push(message.text());
    });
  });

  after(async () => {
    await browser?.close();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    await caller?.close();
    await db?.close();
    await service?.destroy();
  });

  it('is served without a key, with a policy that allows only its own script and origin', async () => {
    const response = await fetch(`${service.url}/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
    const policy = response.headers.get('content-security-policy') ?? '';
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /script-src 'sha256-[A-Za-z0-9+/]+=*'/);
    assert.match(policy, /connect-src 'self'/);
    assert.match(await response.text(), /data-testid="count-FAILED"/);
    assert.equal((await http(service, 'GET', '/api/stats', null)).status, 401, 'the data behind it still needs a key');
    const docs = await http<{ paths: Record<string, unknown> }>(service, 'GET', '/api/docs-json', null);
    assert.equal(docs.body.paths['/'], undefined, 'the page is not an API endpoint');
  });

  it('asks for a key and says when it is wrong', async () => {
    await page.goto(`${service.url}/`);
    assert.match((await page.getByTestId('status').textContent()) ?? '', /Enter an API key/);
    await page.getByTestId('api-key-input').fill('bsk_not-a-key');
    await page.getByTestId('api-key-save').click();
    await page.getByTestId('status').filter({ hasText: 'API key rejected' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId('count-COMPLETED').textContent(), '–', 'nothing is shown without a valid key');
  });

  it('shows the counts, targets, throughput, chunks and failures that the database holds', async () => {
    await page.getByTestId('api-key-input').fill(service.adminKey);
    await page.getByTestId('api-key-save').click();
    await page.getByTestId('status').filter({ hasText: 'Updated' }).waitFor({ timeout: 10_000 });

    const statusCounts = async () => {
      const rows = await db.query<{ status: string; n: number }>(
        `SELECT status, count(*)::int AS n FROM batch.operation_states GROUP BY status`,
      );
      return Object.fromEntries(
        ['PENDING', 'COMPLETED', 'FAILED', 'CANCELLED'].map((s) => [s, rows.find((r) => r.status === s)?.n ?? 0]),
      );
    };
    await until(
      async () =>
        Object.fromEntries(
          await Promise.all(
            ['PENDING', 'COMPLETED', 'FAILED', 'CANCELLED'].map(async (s) => [
              s,
              number(await page.getByTestId(`count-${s}`).textContent()),
            ]),
          ),
        ),
      statusCounts,
      'counts by status',
    );
    assert.deepEqual(await statusCounts(), { PENDING: 1, COMPLETED: 34, FAILED: 2, CANCELLED: 1 });

    const targetRows = async () =>
      page
        .getByTestId('target-row')
        .evaluateAll((rows) =>
          rows.map((row) => [
            row.getAttribute('data-target'),
            ...Array.from(row.querySelectorAll('td[data-status]'), (cell: { textContent: string | null }) =>
              Number(cell.textContent!.replace(/,/g, '')),
            ),
          ]),
        );
    const targetCounts = async () =>
      (
        await db.query<{ target: string; p: number; c: number; f: number; x: number }>(
          `SELECT target, count(*) FILTER (WHERE status = 'PENDING')::int AS p, count(*) FILTER (WHERE status = 'COMPLETED')::int AS c,
                  count(*) FILTER (WHERE status = 'FAILED')::int AS f, count(*) FILTER (WHERE status = 'CANCELLED')::int AS x
             FROM batch.operation_states GROUP BY target ORDER BY target`,
        )
      ).map((r) => [r.target, r.p, r.c, r.f, r.x]);
    await until(targetRows, targetCounts, 'counts by target');
    assert.equal((await targetRows()).length, 2);

    const chart = page.getByTestId('throughput-chart');
    const settledRecently = async () =>
      (
        await db.query<{ c: number; f: number }>(
          `SELECT count(*) FILTER (WHERE status = 'COMPLETED')::int AS c, count(*) FILTER (WHERE status = 'FAILED')::int AS f
             FROM batch.operation_states WHERE settled_at > now() - interval '15 minutes'`,
        )
      ).map((r) => [r.c, r.f])[0];
    await until(
      async () => [Number(await chart.getAttribute('data-completed')), Number(await chart.getAttribute('data-failed'))],
      settledRecently,
      'throughput totals',
    );
    const bars = await page
      .getByTestId('throughput-bar')
      .evaluateAll((groups) =>
        groups.map((g) => Number(g.getAttribute('data-completed')) + Number(g.getAttribute('data-failed'))),
      );
    assert.equal(bars.length, 15, 'one bar per minute');
    assert.equal(
      bars.reduce((a, b) => a + b, 0),
      36,
      'the bars add up to what settled',
    );
    const drawn = await chart
      .locator('rect.completed')
      .evaluateAll((rects) => rects.filter((r) => Number(r.getAttribute('height')) > 0).length);
    assert.ok(drawn >= 1, 'at least one bar is drawn');

    await until(
      async () => page.getByTestId('chunk-row').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-id'))),
      async () =>
        (await db.query<{ id: string }>(`SELECT id FROM batch.chunks ORDER BY id DESC LIMIT 10`)).map((r) => r.id),
      'recent chunks',
    );
    const [newest] = await db.query<{ id: string; read_count: number; write_count: number }>(
      `SELECT id, read_count, write_count FROM batch.chunks ORDER BY id DESC LIMIT 1`,
    );
    const newestCells = await page.locator(`[data-testid="chunk-row"][data-id="${newest.id}"] td`).allTextContents();
    assert.equal(number(newestCells[4]), newest.read_count, 'read count');
    assert.equal(number(newestCells[5]), newest.write_count, 'write count');

    const failedRows = page.getByTestId('failed-row');
    assert.deepEqual(
      await failedRows.evaluateAll((rows) => rows.map((row) => row.getAttribute('data-id'))),
      [negativePrice, doubleBooking],
      'newest first',
    );
    const failures = await db.query<{ id: string; code: string; message: string }>(
      `SELECT id, error_code AS code, error_message AS message FROM batch.operation_states WHERE status = 'FAILED' ORDER BY id DESC`,
    );
    for (const failure of failures) {
      const row = page.locator(`[data-testid="failed-row"][data-id="${failure.id}"]`);
      assert.equal(await row.getByTestId('failed-error-code').textContent(), failure.code);
      assert.equal(await row.getByTestId('failed-error-message').textContent(), failure.message);
    }
    assert.deepEqual(
      failures.map((f) => f.code),
      ['23514', '23505'],
    );
    assert.match(failures[1].message, /<b>taken<\/b>/);
    assert.equal(
      await page.getByTestId('failed-table').locator('b').count(),
      0,
      'database messages are shown as text, never as markup',
    );

    mkdirSync(join(SCREENSHOT, '..'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('keeps the key in this browser', async () => {
    await page.reload();
    await page.getByTestId('status').filter({ hasText: 'Updated' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.getByTestId('failed-row').count(), 2);
  });

  it('retries a failed operation, which then completes and leaves the failed list', async () => {
    await db.query(`DELETE FROM public.seats WHERE seat = 'A1'`); // the row the double booking collided with
    await page.locator(`[data-testid="retry-button"][data-id="${doubleBooking}"]`).click();
    await page
      .getByTestId('notice')
      .filter({ hasText: `Operation ${doubleBooking} is PENDING again` })
      .waitFor({ timeout: 10_000 });
    await until(
      async () =>
        (
          await db.query<{ status: string }>(`SELECT status FROM batch.operation_states WHERE id = $1`, [doubleBooking])
        )[0].status,
      async () => 'COMPLETED',
      'the retried operation',
    );
    assert.deepEqual(await db.query(`SELECT id, seat FROM public.seats WHERE seat = 'A1'`), [{ id: 21, seat: 'A1' }]);
    await until(
      async () => page.getByTestId('failed-row').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-id'))),
      async () => [negativePrice],
      'failed list after the retry',
    );
    await until(
      async () => number(await page.getByTestId('count-COMPLETED').textContent()),
      async () => 35,
      'completed count after the retry',
    );
    assert.equal(number(await page.getByTestId('count-FAILED').textContent()), 1);
    assert.deepEqual(pageErrors, [], 'no script errors and no blocked script or style in the page');
  });

  it('shows a running job with its progress, stops it, restarts it, and shows it completed in the history', async () => {
    await db.query(
      `CREATE TABLE public.seats_copy (LIKE public.seats); ALTER TABLE public.seats_copy ADD PRIMARY KEY (id)`,
    );
    await db.query(
      `CREATE TABLE public.seat_archive (id int PRIMARY KEY, seat text, price numeric(8,2));
       INSERT INTO public.seat_archive SELECT g, 'S' || g, 1 FROM generate_series(1, 400000) g`,
    );
    const copier = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'archivist',
      targets: ['public.seats_copy'],
      sources: ['public.seat_archive'],
    });
    // The copy's target held locked from the launch's answer until the stop is sent: the job starts and shows its
    // progress, and cannot end before it is stopped (400,000 rows went by in a few seconds, the click sometimes after).
    const locker = new TestDb(service.env.DB_NAME);
    let launchedId: string;
    try {
      const launched = await http<{ id: string }>(service, 'POST', '/api/jobs/copy/executions', copier.body.apiKey, {
        parameters: { source: 'public.seat_archive', target: 'public.seats_copy' },
        options: { chunkSize: 200 },
      });
      await locker.query('BEGIN; LOCK TABLE public.seats_copy IN SHARE MODE');
      assert.equal(launched.status, 202, JSON.stringify(launched.body));
      launchedId = launched.body.id;
      const running = page.locator(`[data-testid="job-running-row"][data-id="${launchedId}"]`);
      await running.locator('[data-testid="job-progress"][data-total="400000"]').waitFor({ timeout: 15_000 });
      const done = Number(await running.getByTestId('job-progress').getAttribute('data-done'));
      assert.ok(done >= 0 && done < 400_000, `progress ${done} of 400,000`);
      assert.equal(await running.locator('.progress > span').count(), 1, 'a progress bar');
      await page.screenshot({ path: SCREENSHOT.replace('.png', '-jobs.png'), fullPage: true });
      await Promise.all([
        page.waitForRequest((request) => request.url().endsWith(`/api/jobs/executions/${launchedId}/stop`)),
        running.getByTestId('job-stop').click(),
      ]);
    } finally {
      await locker.query('COMMIT').catch(() => undefined);
      await locker.close();
    }
    const stopped = page.locator(`[data-testid="job-history-row"][data-id="${launchedId}"][data-status="STOPPED"]`);
    await stopped.waitFor({ timeout: 15_000 });
    const kept = await db.count(`SELECT count(*) AS n FROM public.seats_copy`);
    assert.ok(kept > 0 && kept < 400_000, `${kept} rows copied before the stop stay`);

    await stopped.getByTestId('job-restart').click();
    await page
      .getByTestId('notice')
      .filter({ hasText: `Job execution ${launchedId} restarted as` })
      .waitFor();
    const restartedId = /restarted as (\d+)/.exec((await page.getByTestId('notice').textContent()) ?? '')![1];
    await page
      .locator(`[data-testid="job-history-row"][data-id="${restartedId}"][data-status="COMPLETED"]`)
      .waitFor({ timeout: 60_000 });
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.seats_copy`), 400_000);
    const restarted = page.locator(`[data-testid="job-history-row"][data-id="${restartedId}"]`);
    assert.equal(
      number(await restarted.getByTestId('job-written').textContent()),
      400_000 - kept,
      'written by the restart: what the stopped one had not',
    );
    assert.equal(await restarted.getByTestId('job-starts').textContent(), '2', 'the instance started twice');
    await stopped.getByTestId('job-restart').waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(await page.getByTestId('job-restart').count(), 0, 'no Restart where a restart would not start');
    archivistKey = copier.body.apiKey;
    assert.deepEqual(pageErrors, [], 'no script errors and no blocked script or style in the page');
  });

  it('launches a copy from its form; the run shows its parameters; a refused launch says why', async () => {
    await db.query(
      `CREATE TABLE public.depots (id int PRIMARY KEY, city text); CREATE TABLE public.depots_copy (LIKE public.depots);
       ALTER TABLE public.depots_copy ADD PRIMARY KEY (id);
       INSERT INTO public.depots SELECT g, 'city ' || g FROM generate_series(1, 500) g`,
    );
    await page.getByTestId('copy-source').fill('public.depots');
    await page.getByTestId('copy-target').fill('public.depots_copy');
    await page.getByTestId('copy-mode').selectOption('upsert');
    await page.getByTestId('copy-launch').click();
    const notice = page.getByTestId('notice').filter({ hasText: 'The copy was launched: job execution' });
    await notice.waitFor({ timeout: 10_000 });
    const id = /job execution (\d+)/.exec((await notice.textContent()) ?? '')![1];
    const row = page.locator(`[data-testid="job-history-row"][data-id="${id}"][data-status="COMPLETED"]`);
    await row.waitFor({ timeout: 30_000 });
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.depots_copy`), 500);
    assert.deepEqual(await parametersShown(row), {
      source: 'public.depots',
      target: 'public.depots_copy',
      mode: 'upsert',
    });
    const [launched] = await db.query<{ client: string }>(
      `SELECT c.name AS client FROM batch.job_executions e JOIN batch.clients c ON c.id = e.client_id WHERE e.id = $1`,
      [id],
    );
    assert.equal(launched.client, 'admin', 'launched with the key the page uses');

    await page.getByTestId('copy-launch').click(); // the same instance again: complete
    await page
      .getByTestId('notice')
      .filter({ hasText: 'The copy was not launched: ' })
      .filter({ hasText: 'runId' })
      .waitFor({ timeout: 10_000 });
    assert.match((await page.getByTestId('notice').getAttribute('class')) ?? '', /error/);
    assert.deepEqual(pageErrors, [], 'no script errors and no blocked script or style in the page');
  });

  it('uploads an import from its form; its steps and rejects, paged, are those the API lists, as text', async () => {
    await db.query(`CREATE TABLE public.stations (id int PRIMARY KEY, name text NOT NULL, elevation numeric(6,1))`);
    // 60 records, the even ones up to 50 with an elevation that is markup, not a number: 25 rejects, two pages
    const records = Array.from({ length: 60 }, (_, i) => {
      const n = i + 1;
      return `${n},station ${n},${n % 2 === 0 && n <= 50 ? '"<b>high</b>"' : n * 10}`;
    });
    await page.getByTestId('import-file').setInputFiles({
      name: 'stations.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(['id,name,elevation', ...records].join('\n') + '\n'),
    });
    await page.getByTestId('import-target').fill('public.stations');
    await page.getByTestId('import-skip-limit').fill('30');
    await page.getByTestId('import-upload').click();
    const notice = page.getByTestId('notice').filter({ hasText: 'The import of stations.csv was launched' });
    await notice.waitFor({ timeout: 15_000 });
    const id = /job execution (\d+)/.exec((await notice.textContent()) ?? '')![1];
    const row = page.locator(`[data-testid="job-history-row"][data-id="${id}"][data-status="COMPLETED"]`);
    await row.waitFor({ timeout: 30_000 });
    assert.equal(await row.getByTestId('job-exit').textContent(), 'COMPLETED_WITH_SKIPS');
    assert.equal(number(await row.getByTestId('job-skipped').textContent()), 25);
    assert.equal(await db.count(`SELECT count(*) AS n FROM public.stations`), 35);
    const execution = await http<IJobExecution>(service, 'GET', `/api/jobs/executions/${id}`, service.adminKey);
    const shown = await parametersShown(row);
    assert.equal(shown.target, 'public.stations');
    assert.equal(shown.sha256, execution.body.parameters.sha256, 'the data set, by its sha256');
    assert.equal(shown.format, 'csv');
    assert.equal(shown.mode, 'insert');

    await row.getByTestId('job-details-link').click();
    assert.equal(new URL(page.url()).hash, `#job-execution-${id}`, 'a link, so the address names it');
    const detail = page.getByTestId('job-detail');
    await detail
      .getByTestId('job-detail-title')
      .filter({ hasText: `Job execution ${id} · import` })
      .waitFor();
    const steps = await detail
      .getByTestId('step-row')
      .evaluateAll((rows) =>
        rows.map((r) => [
          r.getAttribute('data-name'),
          ...['step-read', 'step-written', 'step-skipped'].map((t) =>
            Number(r.querySelector(`[data-testid="${t}"]`)!.textContent!.replace(/,/g, '')),
          ),
        ]),
      );
    assert.deepEqual(
      steps,
      execution.body.steps.map((s) => [
        s.name,
        s.readCount,
        s.writeCount,
        s.readSkipCount + s.processSkipCount + s.writeSkipCount,
      ]),
    );

    const rejectsShown = () =>
      detail
        .getByTestId('reject-row')
        .evaluateAll((rows) =>
          rows.map((r) =>
            ['reject-line', 'reject-column', 'reject-code', 'reject-record'].map(
              (t) => r.querySelector(`[data-testid="${t}"]`)!.textContent,
            ),
          ),
        );
    const rejectsListed = async (cursor?: string) => {
      const listed = await http<IJobRejectList>(
        service,
        'GET',
        `/api/jobs/executions/${id}/rejects?limit=20${cursor ? `&cursor=${cursor}` : ''}`,
        service.adminKey,
      );
      return {
        rows: listed.body.items.map((r) => [String(r.line), r.column ?? '', r.code, r.record ?? '']),
        next: listed.body.nextCursor,
      };
    };
    const first = await rejectsListed();
    assert.equal(first.rows.length, 20);
    await until(rejectsShown, async () => first.rows, 'the first page of rejects');
    assert.equal(first.rows[0][0], '3', 'record 2 is on line 3, after the header');
    assert.match(first.rows[0][3], /<b>high<\/b>/);
    assert.equal(await detail.locator('b').count(), 0, 'records are shown as text, never as markup');
    assert.equal(await detail.getByTestId('rejects-previous').isDisabled(), true);

    await detail.getByTestId('rejects-next').click();
    const second = await rejectsListed(first.next!);
    assert.equal(second.rows.length, 5);
    await until(rejectsShown, async () => second.rows, 'the second page of rejects');
    assert.equal(await detail.getByTestId('rejects-next').isDisabled(), true, 'the last page');
    assert.match((await detail.getByTestId('rejects-page').textContent()) ?? '', /page 2: rejects 21–25/);

    await detail.getByTestId('rejects-previous').click();
    await until(rejectsShown, async () => first.rows, 'back to the first page');
    await page.reload(); // the address keeps it open
    await until(rejectsShown, async () => first.rows, 'the execution the address names, after a reload');
    await page.screenshot({ path: SCREENSHOT.replace('.png', '-execution.png'), fullPage: true });
    await detail.getByTestId('job-detail-close').click();
    await detail.waitFor({ state: 'hidden' });
    assert.deepEqual(pageErrors, [], 'no script errors and no blocked script or style in the page');
  });

  it('lists the schedules with their cron, time zone, last and next tick, and whether enabled', async () => {
    const put = (name: string, body: Record<string, unknown>) =>
      http<IJobSchedule>(service, 'PUT', `/api/jobs/schedules/${name}`, service.adminKey, { client: 'admin', ...body });
    const nightly = await put('nightly-depots', {
      job: 'copy',
      cron: '0 3 * * *',
      timeZone: 'Europe/Berlin',
      parameters: { source: 'public.depots', target: 'public.depots_copy', mode: 'upsert' },
    });
    assert.equal(nightly.status, 200, JSON.stringify(nightly.body));
    const everySecond = {
      job: 'copy',
      cron: '* * * * * *',
      timeZone: 'America/New_York',
      parameters: { source: 'public.depots', target: 'public.depots_copy', mode: 'upsert', runId: 'ticks' },
    };
    await put('paused', everySecond);
    await eventually(
      async () =>
        (await http<IJobSchedule[]>(service, 'GET', '/api/jobs/schedules', service.adminKey)).body.find(
          (s) => s.name === 'paused',
        )?.lastTickAt ?? undefined,
      15_000,
      'a tick of the schedule every second',
    );
    await put('paused', { ...everySecond, enabled: false });
    const listed = (await http<IJobSchedule[]>(service, 'GET', '/api/jobs/schedules', service.adminKey)).body;
    const rows = page.getByTestId('schedule-row');
    await until(
      async () =>
        rows.evaluateAll((all) => all.map((r) => [r.getAttribute('data-name'), r.getAttribute('data-enabled')])),
      async () => [
        ['nightly-depots', 'true'],
        ['paused', 'false'],
      ],
      'the schedules',
    );
    for (const schedule of listed) {
      const row = page.locator(`[data-testid="schedule-row"][data-name="${schedule.name}"]`);
      assert.equal(await row.getByTestId('schedule-cron').textContent(), schedule.cron);
      assert.equal(await row.getByTestId('schedule-time-zone').textContent(), schedule.timeZone);
      assert.equal(await row.getByTestId('schedule-enabled').textContent(), schedule.enabled ? 'enabled' : 'disabled');
      for (const [testId, at] of [
        ['schedule-last-tick', schedule.lastTickAt],
        ['schedule-next-tick', schedule.nextTickAt],
      ] as const) {
        const cell = row.getByTestId(testId);
        assert.equal(await cell.getAttribute('data-at'), at ?? '');
        assert.equal(await cell.textContent(), at ? inZone(at, schedule.timeZone) : '–', `${schedule.name} ${testId}`);
      }
    }
    assert.equal(listed[0].lastTickAt, null, 'the nightly one has not ticked');
    assert.equal(listed[1].nextTickAt, null, 'a disabled one has no next tick');
    assert.match(
      (await page
        .locator('[data-testid="schedule-row"][data-name="nightly-depots"] [data-testid="schedule-next-tick"]')
        .textContent()) ?? '',
      / 03:00:00$/,
      "the next tick at 3 o'clock in its own time zone",
    );
    await page.getByTestId('schedules-table').screenshot({ path: SCREENSHOT.replace('.png', '-schedules.png') });
    assert.deepEqual(pageErrors, [], 'no script errors and no blocked script or style in the page');
  });

  it('with a key that is no admin, shows its own jobs and says that schedules are listed for an admin', async () => {
    await page.getByTestId('api-key-input').fill(archivistKey);
    await page.getByTestId('api-key-save').click();
    await page
      .getByTestId('schedules-table')
      .getByText('Schedules are listed for an admin key')
      .waitFor({ timeout: 10_000 });
    assert.match((await page.getByTestId('status').textContent()) ?? '', /Updated/);
    const clients = await page
      .getByTestId('job-history-row')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')));
    const own = await db.query<{ id: string }>(
      `SELECT e.id FROM batch.job_executions e JOIN batch.clients c ON c.id = e.client_id
        WHERE c.name = 'archivist' AND e.status NOT IN ('STARTING', 'STARTED', 'STOPPING') ORDER BY e.id DESC`,
    );
    assert.deepEqual(
      clients,
      own.map((r) => r.id),
      "only this client's executions",
    );
    assert.deepEqual(pageErrors, [], 'no script errors and no blocked script or style in the page');
  });
});
