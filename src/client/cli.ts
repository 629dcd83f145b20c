#!/usr/bin/env node
import { parseArgs } from 'node:util';
import type { IJobExecution, IJobRejectList } from '../interfaces/job.interfaces';
import { BatchServiceError } from './batch-service.error';
import { answerOf, importFile, ImportParams, ImportTarget } from './import-file';

const USAGE = `batch-service import <file> --target <table> [options]

Uploads a CSV or NDJSON file (optionally .gz) to the Batch Service, which loads it into the table, and follows the
load to its end: progress on the terminal, then the rejected records. Exit code 0 when the import completed (with or
without rejects), 1 when it failed or stopped, 2 when the upload was refused.

  --target <table>         the table loaded (required)
  --mode insert|upsert     default insert
  --conflict-key <a,b>     upsert: a unique key (default the primary key)
  --format csv|ndjson      default from the file name
  --no-header              CSV: the first record is data; --columns names the fields
  --columns <a,b,c>        CSV without a header: the columns in file order
  --delimiter <c>  --quote <c>  --null <text>
  --skip-limit <n>         records that may be rejected (default 0)
  --chunk-size <n>         records per transaction
  --run-id <text>          load the same file once more
  --url <url>              the service (default $BATCH_SERVICE_URL or http://127.0.0.1:3000)
  --key <key>              the API key (default $BATCH_API_KEY)`;

const FLAGS = {
  target: { type: 'string' },
  mode: { type: 'string' },
  'conflict-key': { type: 'string' },
  format: { type: 'string' },
  'no-header': { type: 'boolean' },
  columns: { type: 'string' },
  delimiter: { type: 'string' },
  quote: { type: 'string' },
  null: { type: 'string' },
  'skip-limit': { type: 'string' },
  'chunk-size': { type: 'string' },
  'run-id': { type: 'string' },
  url: { type: 'string' },
  key: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: FLAGS, allowPositionals: true });
  const [command, file] = positionals;
  if (values.help || command !== 'import' || !file || !values.target) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  const service: ImportTarget = {
    url: values.url ?? process.env.BATCH_SERVICE_URL ?? 'http://127.0.0.1:3000',
    apiKey: values.key ?? process.env.BATCH_API_KEY ?? '',
  };
  const count = (text: string | undefined) => (text === undefined ? undefined : Number(text));
  const params: ImportParams = {
    target: values.target,
    mode: values.mode as ImportParams['mode'],
    conflictKey: values['conflict-key'],
    format: values.format as ImportParams['format'],
    header: values['no-header'] ? false : undefined,
    columns: values.columns,
    delimiter: values.delimiter,
    quote: values.quote,
    null: values.null,
    skipLimit: count(values['skip-limit']),
    chunkSize: count(values['chunk-size']),
    runId: values['run-id'],
  };
  const bar = new ProgressBar();
  let execution: IJobExecution;
  try {
    execution = await importFile(service, file, params, (sent, total) => bar.show('upload', sent, total, 'B'));
  } catch (error) {
    bar.done();
    console.error(`refused: ${error instanceof BatchServiceError ? `${error.code}: ${error.message}` : error}`);
    return 2;
  }
  bar.done();
  console.error(`execution ${execution.id} of job instance ${execution.instanceId}`);
  const get = async <T>(path: string) =>
    answerOf<T>(await fetch(service.url + path, { headers: { 'x-api-key': service.apiKey } }));
  for (;;) {
    execution = await get<IJobExecution>(`/api/jobs/executions/${execution.id}`);
    const { progress } = execution;
    if (progress) bar.show('load', progress.done, progress.total, 'B', progress.etaSeconds);
    if (['COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED'].includes(execution.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  bar.done();
  const step = execution.steps[0];
  const rejected = step ? step.readSkipCount + step.processSkipCount + step.writeSkipCount : 0;
  console.log(
    `${execution.status} (${execution.exitStatus?.code ?? '-'}): ${step?.readCount ?? 0} records read, ` +
      `${step?.writeCount ?? 0} written, ${rejected} rejected` +
      (execution.exitStatus?.description ? `\n${execution.exitStatus.description}` : ''),
  );
  if (rejected > 0) {
    const { items } = await get<IJobRejectList>(`/api/jobs/executions/${execution.id}/rejects?limit=20`);
    for (const r of items)
      console.log(`  line ${r.line}${r.column ? `, column ${r.column}` : ''}: ${r.code} ${r.message}`);
    if (rejected > items.length) console.log(`  … all of them: GET /api/jobs/executions/${execution.id}/rejects`);
  }
  return execution.status === 'COMPLETED' ? 0 : 1;
}

/** One line on a terminal, redrawn in place; a line every 10 % elsewhere (a log, a pipe). */
class ProgressBar {
  private shown = -1;

  show(what: string, done: number, total: number | null, unit: string, eta?: number | null): void {
    const share = total ? Math.min(1, done / total) : null;
    if (!process.stderr.isTTY) {
      const tenth = share === null ? -1 : Math.floor(share * 10);
      if (tenth === this.shown) return;
      this.shown = tenth;
    }
    const bar =
      share === null ? '' : `[${'#'.repeat(Math.round(share * 30)).padEnd(30, '.')}] ${(share * 100).toFixed(0)}% `;
    const line = `${what} ${bar}${human(done)}${total ? `/${human(total)}` : ''} ${unit}${eta ? `, ${eta} s left` : ''}`;
    process.stderr.write(process.stderr.isTTY ? `\r${line}\u001b[K` : `${line}\n`);
  }

  done(): void {
    if (process.stderr.isTTY && this.shown !== -2) process.stderr.write('\n');
    this.shown = -1;
  }
}

function human(bytes: number): string {
  const units = ['', 'k', 'M', 'G', 'T'];
  let value = bytes;
  let unit = 0;
  for (; value >= 1000 && unit < units.length - 1; unit++) value /= 1000;
  return `${unit === 0 ? value : value.toFixed(1)}${units[unit]}`;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 2;
  },
);
