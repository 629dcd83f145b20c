import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BrowserContext, chromium, Page } from 'playwright-core';
import { findChromium, HOW_TO_GET_A_BROWSER } from '../support/browser';
import { createCaller, settleAll, TestDb, type Caller } from '../support/harness';
import { http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
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
    const cells = await page.locator(`[data-testid="job-history-row"][data-id="${restartedId}"] td`).allTextContents();
    assert.equal(number(cells[6]), 400_000 - kept, 'written by the restart: what the stopped one had not');
    assert.equal(cells[7], '2', 'the instance started twice');
    assert.deepEqual(pageErrors, [], 'no script errors and no blocked script or style in the page');
  });
});
