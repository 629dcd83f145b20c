import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Figure, save, table } from './report';
import { benchIngest } from './ingest';
import { benchLatency } from './latency';
import { benchQueue } from './queue';
import { benchWriter } from './writer';

/**
 * `npm run bench` — every figure against a baseline measured in the same run. `--quick` for a run under a
 * minute; sizes can be set one by one (`npm run bench -- --rows 200000`).
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rows: { type: 'string' },
      sample: { type: 'string' },
      chunk: { type: 'string' },
      requests: { type: 'string' },
      seconds: { type: 'string' },
      settled: { type: 'string' },
      only: { type: 'string' },
    },
  });
  const quick = values.quick;
  const settings = {
    rows: Number(values.rows ?? (quick ? 20_000 : 200_000)),
    sample: Number(values.sample ?? (quick ? 300 : 2_000)),
    chunk: Number(values.chunk ?? 5_000),
    requests: Number(values.requests ?? (quick ? 5_000 : 30_000)),
    inFlight: 200,
    bulkMessages: quick ? 20 : 100,
    latencySeconds: Number(values.seconds ?? (quick ? 8 : 600)),
    rate: 2_000,
    settled: Number(values.settled ?? (quick ? 300_000 : 5_000_000)),
  };
  const only = values.only?.split(',');
  const figures: Figure[] = [];
  if (!only || only.includes('writer')) figures.push(...(await benchWriter(settings)));
  if (!only || only.includes('ingest')) figures.push(...(await benchIngest(settings)));
  if (!only || only.includes('latency')) {
    figures.push(...(await benchLatency({ rate: settings.rate, seconds: settings.latencySeconds, interval: 100 })));
    // "never worse than interval + 250 ms at any interval": a short run at a few more intervals
    if (!quick)
      for (const interval of [10, 1000, 5000])
        figures.push(...(await benchLatency({ rate: settings.rate, seconds: 20, interval })).slice(0, 2));
  }
  if (!only || only.includes('queue')) figures.push(...(await benchQueue({ settled: settings.settled, chunk: 1000 })));
  console.log(table(figures));
  save(join(__dirname, '..', '..', 'bench', 'results'), figures, settings);
  console.log('\nwritten: bench/results/latest.json, bench/results/latest.svg');
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
