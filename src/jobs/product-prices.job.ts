import { Inject, Injectable } from '@nestjs/common';
import { BatchJob, CatalogService, chunk, job, pagingReader, tableWriter, type JobDefinition } from '../services/jobs';

/** Where the pricing service answers (`GET <url>/prices/<sku>` → `{"price": …}`): provided by the job's module. */
export const PRICING_URL = Symbol('PRICING_URL');

/** The pricing service did not answer, or answered 5xx or 429: worth trying again. */
export class PricingUnavailable extends Error {}

/**
 * An example of a team's own job that calls another service per item: asks the pricing service the price of each
 * product (8 at a time), retries it when it is unavailable (4 attempts, waiting 100 ms, 200 ms, 400 ms), skips a
 * product it does not know (404) within `skipLimit`, and upserts the prices, 100 a transaction.
 */
@BatchJob()
@Injectable()
export class ProductPricesJob {
  readonly definition: JobDefinition;

  constructor(catalog: CatalogService, @Inject(PRICING_URL) url: string) {
    const price = async ({ id, sku }: { id: string; sku: string }) => {
      const response = await fetch(`${url}/prices/${encodeURIComponent(sku)}`, {
        signal: AbortSignal.timeout(5000),
      }).catch((error: unknown) => Promise.reject(new PricingUnavailable(String(error))));
      if (response.status >= 500 || response.status === 429)
        throw new PricingUnavailable(`pricing answered ${response.status}`);
      if (!response.ok) throw new Error(`pricing answered ${response.status} for ${sku}`);
      const { price } = (await response.json()) as { price: string };
      return { product_id: id, price, priced_at: new Date() };
    };
    this.definition = job('product-prices')
      .describe('Fetches the price of every product from the pricing service')
      .option('skipLimit', { type: 'integer', default: 0, description: 'products the pricing service may not know' })
      .grants(async () => ({ reads: ['public.products'], writes: ['public.product_prices'] }))
      .step(
        'price',
        chunk({
          chunkSize: 100,
          reader: pagingReader<{ id: string; sku: string }>({ table: 'products', columns: ['id', 'sku'], key: 'id' }),
          processor: price,
          concurrency: 8,
          retry: { on: [PricingUnavailable], limit: 4, backoff: { initialMs: 100, multiplier: 2, jitter: 0.2 } },
          writer: tableWriter({ catalog, table: 'product_prices', type: 'upsert' }),
        }),
      )
      .build();
  }
}
