import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { Figure, merged, save, table } from './report';
import { benchDrain } from './drain';
import { benchIngest } from './ingest';
import { benchImports } from './imports';
import { benchJobs } from './jobs';
import { benchToolkit } from './toolkit';
import { benchReleased } from './released';
import { benchLatency } from './latency';
import { benchQueue } from './queue';
import { benchFaults } from './faults';

/** The sizes a run takes as options: the setting each gives, its default in a full run and in a quick one. */
const SIZES = {
  rows: { setting: 'rows', full: 1_000_000, quick: 20_000, what: 'the insert backlog' },
  'other-rows': { setting: 'otherRows', full: 200_000, quick: 5_000, what: "each other type's backlog" },
  scheduled: { setting: 'scheduled', full: 1_000_000, quick: 0, what: 'operations scheduled a day ahead' },
  requests: { setting: 'requests', full: 45_000, quick: 9_000, what: 'single creates, over nine rounds' },
  'bulk-messages': { setting: 'bulkMessages', full: 300, quick: 10, what: 'createOperations messages of 1,000' },
  seconds: { setting: 'latencySeconds', full: 600, quick: 8, what: 'the latency run' },
  settled: { setting: 'settled', full: 5_000_000, quick: 200_000, what: 'settled operations for queue health' },
  'fault-operations': {
    setting: 'faultOperations',
    full: 10_000,
    quick: 1_000,
    what: 'inserts and increments each, killed workers',
  },
  'released-runs': { setting: 'releasedRuns', full: 5, quick: 1, what: 'runs of the released backlogs' },
  repeat: { setting: 'repeat', full: 3, quick: 1, what: 'runs of each section but latency and released' },
  'memory-rows': { setting: 'memoryRows', full: 10_000_000, quick: 0, what: 'the import whose memory is watched' },
} as const;
type SizeSetting = (typeof SIZES)[keyof typeof SIZES]['setting'];

const USAGE = `npm run bench [-- options]: the service started with npm start, driven through RabbitMQ, every figure
against a baseline measured in the same run.
  --quick                  every section in a few minutes (small sizes, one latency interval)
  --only SECTIONS          some of drain,released,ingest,latency,queue,jobs,toolkit,imports,faults
${Object.entries(SIZES)
  .map(
    ([option, size]) =>
      `  --${`${option} N`.padEnd(23)}${size.what} (${size.full.toLocaleString('en')}; quick ${size.quick.toLocaleString('en')})`,
  )
  .join('\n')}
A full run (no options) writes bench/results/latest.json, .svg and .md, the results the README shows; any other run
writes bench/results/partial.json, .svg and .md (not committed).`;

/**
 * `npm run bench`: the service started as the README starts it (`npm start`), driven through RabbitMQ, every figure
 * against a baseline measured in the same run (USAGE).
 */
async function main(): Promise<void> {
  Logger.overrideLogger(['error']); // the baselines' NestJS clients in this process
  const sizeOptions = Object.fromEntries(Object.keys(SIZES).map((option) => [option, { type: 'string' as const }]));
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', short: 'h', default: false },
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      ...sizeOptions,
    },
  });
  if (values.help) return console.log(USAGE);
  const full = !values.quick && Object.keys(values).every((option) => option === 'help' || option === 'quick');
  const quick = values.quick;
  const sizes = Object.fromEntries(
    Object.entries(SIZES).map(([option, size]) => [
      size.setting,
      Number((values as Record<string, unknown>)[option] ?? (quick ? size.quick : size.full)),
    ]),
  ) as Record<SizeSetting, number>;
  const settings = {
    ...sizes,
    sample: quick ? 1_000 : 5_000,
    bullmqRows: quick ? 5_000 : 100_000,
    inFlight: 200,
    rate: 2_000,
  };
  const only = values.only?.split(',');
  const runs = (section: string) => !only || only.includes(section);
  const figures: Figure[] = [];
  /** A section run `repeat` times over, one after the other: each figure with its runs' min, median and max. */
  const repeated = async (section: () => Promise<Figure[]>) => {
    const repeats: Figure[][] = [];
    for (let run = 0; run < settings.repeat; run++) repeats.push(await section());
    return merged(repeats);
  };
  if (runs('drain')) figures.push(...(await repeated(() => benchDrain(settings))));
  if (runs('released'))
    figures.push(...(await benchReleased({ rows: settings.otherRows, runs: quick ? 1 : settings.releasedRuns })));
  if (runs('ingest')) figures.push(...(await repeated(() => benchIngest(settings))));
  if (runs('latency')) {
    figures.push(...(await benchLatency({ rate: settings.rate, seconds: settings.latencySeconds, interval: 100 })));
    // "never worse than interval + 250 ms at any interval": a short run at a few more intervals
    if (!quick)
      for (const interval of [10, 1000, 5000])
        figures.push(...(await benchLatency({ rate: settings.rate, seconds: 20, interval })).slice(0, 2));
  }
  if (runs('jobs')) figures.push(...(await repeated(() => benchJobs({ rows: settings.rows, rate: 1_000 }))));
  if (runs('toolkit')) figures.push(...(await repeated(() => benchToolkit({ rows: settings.rows }))));
  if (runs('imports')) figures.push(...(await repeated(() => benchImports(settings))));
  if (runs('queue')) figures.push(...(await repeated(() => benchQueue({ settled: settings.settled, chunk: 1000 }))));
  if (runs('faults')) figures.push(...(await benchFaults({ operations: settings.faultOperations })));
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
