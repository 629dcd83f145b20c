import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Module } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import { ExpireHoldsJob } from '../../src/jobs/expire-holds.job';
import { PRICING_URL, ProductPricesJob } from '../../src/jobs/product-prices.job';
import { Jobs, startJobs } from '../support/jobs-app';

/**
 * A pricing service that fails (503) the first two requests for each product, does not know the sku `gone` (404),
 * and prices the others at their number of characters.
 */
function pricingService(): { server: Server; requests: Map<string, number> } {
  const requests = new Map<string, number>();
  const server = createServer((request, response) => {
    const sku = decodeURIComponent(request.url!.replace('/prices/', ''));
    const count = (requests.get(sku) ?? 0) + 1;
    requests.set(sku, count);
    if (count <= 2) return void response.writeHead(503).end();
    if (sku === 'gone') return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ price: `${sku.length}.50` }));
  });
  return { server, requests };
}

const pricing = pricingService();

@Module({
  providers: [
    ExpireHoldsJob,
    ProductPricesJob,
    { provide: PRICING_URL, useFactory: () => `http://127.0.0.1:${(pricing.server.address() as AddressInfo).port}` },
  ],
})
class ExampleJobs {}

/** The examples of a team's own jobs (src/jobs, the README's and docs/jobs.md's), run as a team would list them. */
describe("a team's own jobs: the examples in src/jobs", () => {
  let jobs: Jobs;
  before(async () => {
    await new Promise<void>((resolve) => pricing.server.listen(0, '127.0.0.1', resolve));
    jobs = await startJobs(
      { targets: ['public.holds', 'public.product_prices'], sources: ['public.holds', 'public.products'] },
      [ExampleJobs],
    );
    await jobs.db.query(`
      CREATE TABLE holds (id bigint PRIMARY KEY, expires_at timestamptz NOT NULL);
      INSERT INTO holds SELECT g, timestamptz '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 12000) g;
      CREATE TABLE products (id bigint PRIMARY KEY, sku text NOT NULL);
      INSERT INTO products SELECT g, repeat('x', g % 7 + 1) || g FROM generate_series(1, 250) g;
      INSERT INTO products VALUES (251, 'gone');
      CREATE TABLE product_prices (product_id bigint PRIMARY KEY, price numeric(10,2) NOT NULL, priced_at timestamptz);`);
  });
  after(async () => {
    await jobs.close();
    pricing.server.close();
  });

  it('expire-holds deletes the holds that expired before `before`, 5,000 a chunk, and no other', async () => {
    const launched = await jobs.operator.launch(jobs.client, 'expire-holds', { before: '2026-01-08T00:00:00Z' }, {});
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual([done.steps[0].readCount, done.steps[0].writeCount, done.steps[0].commitCount], [10079, 10079, 3]);
    const [{ left, first }] = await jobs.db.query<{ left: string; first: string }>(
      `SELECT count(*) AS left, min(id) AS first FROM holds`,
    );
    assert.deepEqual([Number(left), Number(first)], [12000 - 10079, 10080]);
  });

  it("the README's and docs/jobs.md's copies of the examples are the files'", () => {
    const root = join(__dirname, '..', '..', '..');
    const read = (path: string) => readFileSync(join(root, path), 'utf8');
    const code = (text: string) => text.replace(/\/\*\*[\s\S]*?\*\/\n@BatchJob/, '@BatchJob');
    const shown = (document: string, first: string) => {
      const start = read(document).indexOf(first);
      assert.ok(start > 0, `${document} shows the example`);
      return code(read(document).slice(start, read(document).indexOf('```', start)));
    };
    const holds = read('src/jobs/expire-holds.job.ts');
    assert.equal(shown('README.md', holds.slice(0, holds.indexOf('/**'))), code(holds));
    const prices = read('src/jobs/product-prices.job.ts');
    assert.equal(shown('docs/jobs.md', prices.slice(0, prices.indexOf('/**'))), code(prices));
  });

  it('product-prices calls the pricing service per product, retried with back-off, and skips the unknown', async () => {
    const launched = await jobs.operator.launch(jobs.client, 'product-prices', {}, { skipLimit: 1 });
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    const [step] = done.steps;
    assert.deepEqual([step.readCount, step.writeCount, step.processSkipCount], [251, 250, 1]);
    // every product was asked three times: twice refused, then answered (the unknown one: refused, then 404)
    assert.deepEqual(new Set(pricing.requests.values()), new Set([3]));
    const prices = await jobs.db.query<{ n: string; right: string }>(
      `SELECT count(*) AS n, count(*) FILTER (WHERE pp.price = length(p.sku) + 0.5) AS right
         FROM product_prices pp JOIN products p ON p.id = pp.product_id`,
    );
    assert.deepEqual(prices[0], { n: '250', right: '250' });
    const [{ retries }] = await jobs.db.query<{ retries: number }>(
      `SELECT (execution_context ->> 'retryCount')::int AS retries FROM batch.step_executions
        WHERE job_execution_id = $1`,
      [launched.id],
    );
    assert.equal(retries, 251 * 2);
  });
});
