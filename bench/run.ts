import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { Figure, save, table } from './report';
import { benchDrain } from './drain';
import { benchIngest } from './ingest';
import { benchLatency } from './latency';
import { benchQueue } from './queue';

const USAGE = `npm run bench [-- options]: the service started with npm start, driven through RabbitMQ, every figure
against a baseline measured in the same run.
  --quick                  a run under a minute (small sizes, one latency interval)
  --only SECTIONS          some of drain,ingest,latency,queue
  --rows N                 the insert backlog (1,000,000; quick 20,000)
  --other-rows N           each other type's backlog (200,000; quick 5,000)
  --scheduled N            operations scheduled a day ahead behind the inserts (1,000,000; quick 0)
  --requests N             single creates, over three rounds (30,000; quick 3,000)
  --bulk-messages N        createOperations messages of 1,000 (300; quick 10)
  --seconds N              the latency run (600; quick 8)
  --settled N              settled operations for queue health (5,000,000; quick 200,000)
A full run (no options) writes bench/results/latest.json and .svg, the results the README shows; any other run
writes bench/results/partial.json and .svg (not committed).`;

/**
 * `npm run bench`: the service started as the README starts it (`npm start`), driven through RabbitMQ, every figure
 * against a baseline measured in the same run (USAGE).
 */
async function main(): Promise<void> {
  Logger.overrideLogger(['error']); // the baselines' NestJS clients in this process
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', short: 'h', default: false },
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
  if (values.help) return console.log(USAGE);
  const full = !values.quick && Object.keys(values).every((option) => option === 'help' || option === 'quick');
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
  const written = save(join(__dirname, '..', '..', 'bench', 'results'), full ? 'latest' : 'partial', figures, settings);
  console.log(`\nwritten: ${written.map((path) => relative(process.cwd(), path)).join(', ')}`);
}

main().then(
  () => process.exit(0),
  (error: Error & { code?: string }) => {
    if (error.code?.startsWith('ERR_PARSE_ARGS')) console.error(`${error.message}\n\n${USAGE}`);
    else console.error(error);
    process.exit(1);
  },
);
