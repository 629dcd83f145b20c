import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { Figure, save, table } from './report';
import { benchDrain } from './drain';
import { benchIngest } from './ingest';
import { benchLatency } from './latency';
import { benchQueue } from './queue';

/**
 * `npm run bench`: the service started as the README starts it (`npm start`), driven through RabbitMQ, every figure
 * against a baseline measured in the same run. `--quick` for a run under a minute; sizes one by one
 * (`npm run bench -- --rows 200000`), sections with `--only drain,ingest,latency,queue`.
 */
async function main(): Promise<void> {
  Logger.overrideLogger(['error']); // the baselines' NestJS clients in this process
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      rows: { type: 'string' },
      'other-rows': { type: 'string' },
      scheduled: { type: 'string' },
      requests: { type: 'string' },
      'bulk-messages': { type: 'string' },
      seconds: { type: 'string' },
      settled: { type: 'string' },
      only: { type: 'string' },
    },
  });
  const quick = values.quick;
  const settings = {
    rows: Number(values.rows ?? (quick ? 20_000 : 1_000_000)),
    otherRows: Number(values['other-rows'] ?? (quick ? 5_000 : 200_000)),
    sample: quick ? 1_000 : 5_000,
    bullmqRows: quick ? 5_000 : 100_000,
    scheduled: Number(values.scheduled ?? (quick ? 0 : 1_000_000)),
    requests: Number(values.requests ?? (quick ? 3_000 : 30_000)),
    inFlight: 200,
    bulkMessages: Number(values['bulk-messages'] ?? (quick ? 10 : 300)),
    latencySeconds: Number(values.seconds ?? (quick ? 8 : 600)),
    rate: 2_000,
    settled: Number(values.settled ?? (quick ? 200_000 : 5_000_000)),
  };
  const only = values.only?.split(',');
  const runs = (section: string) => !only || only.includes(section);
  const figures: Figure[] = [];
  if (runs('drain')) figures.push(...(await benchDrain(settings)));
  if (runs('ingest')) figures.push(...(await benchIngest(settings)));
  if (runs('latency')) {
    figures.push(...(await benchLatency({ rate: settings.rate, seconds: settings.latencySeconds, interval: 100 })));
    // "never worse than interval + 250 ms at any interval": a short run at a few more intervals
    if (!quick)
      for (const interval of [10, 1000, 5000])
        figures.push(...(await benchLatency({ rate: settings.rate, seconds: 20, interval })).slice(0, 2));
  }
  if (runs('queue')) figures.push(...(await benchQueue({ settled: settings.settled, chunk: 1000 })));
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
