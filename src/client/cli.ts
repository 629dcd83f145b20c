#!/usr/bin/env node
import { existsSync, statSync } from 'node:fs';
import type { IJobExecution, IJobRejectList } from '../interfaces/job.interfaces';
import { EXIT, parseCommand, refusal, USAGE } from './cli-args';
import { decide, look, startFollowing, unreachableReason } from './follow';
import { answerOf, importFile, ImportTarget } from './import-file';

async function main(argv: string[]): Promise<number> {
  const command = parseCommand(argv, process.env);
  if (command.kind === 'help') {
    console.log(USAGE);
    return EXIT.completed;
  }
  if (command.kind === 'wrong') {
    console.error(`batch-service: ${command.problem}`);
    return EXIT.refused;
  }
  const { file, service, params, timeoutMs } = command;
  if (!existsSync(file) || !statSync(file).isFile()) {
    console.error(`batch-service: there is no file ${file}`);
    return EXIT.refused;
  }
  const bar = new ProgressBar();
  let launched: IJobExecution;
  let sent = 0;
  const uploaded = (bytes: number, total: number | null) => bar.show('upload', (sent = bytes), total, 'B');
  try {
    launched = await importFile(service, file, params, uploaded);
  } catch (error) {
    bar.done();
    const reason = unreachableReason(error);
    if (reason === null) {
      console.error(`refused: ${refusal(error)}`);
      return EXIT.refused;
    }
    console.error(
      `cannot reach the service at ${service.url} (${reason}): is it running, and is that its address ` +
        '(--url or $BATCH_SERVICE_URL)?',
    );
    if (sent > 0)
      console.error(
        'The upload broke off: nothing was launched unless the service had stored the whole file. The same ' +
          'command again tells which: a stored file is refused as running or loaded.',
      );
    return EXIT.unreachable;
  }
  bar.done();
  console.error(`execution ${launched.id} of job instance ${launched.instanceId}`);

  const state = startFollowing(launched, Date.now(), timeoutMs);
  for (;;) {
    const seen = await look(service, launched.instanceId);
    const move = decide(state, seen, Date.now());
    for (const line of move.say) bar.note(line);
    const progress = seen.kind === 'executions' ? seen.items[0]?.progress : null;
    // nothing yet until the load reports its bytes (before it, an execution's progress is 0 items)
    if (progress && (progress.done > 0 || progress.total !== null))
      bar.show('load', progress.done, progress.total, progress.unit, progress.etaSeconds, progress.perSecond);
    if (move.kind === 'end') {
      bar.done();
      if (seen.kind === 'executions') await report(service, state.executions);
      return move.exit;
    }
    await new Promise((resolve) => setTimeout(resolve, move.ms));
  }
}

/** The outcome on stdout: the last execution's status, the counts of all of the instance's, then the rejects. */
async function report(service: ImportTarget, executions: IJobExecution[]): Promise<void> {
  const last = executions[0];
  const steps = executions.flatMap((e) => e.steps);
  const sum = (count: (step: (typeof steps)[number]) => number) => steps.reduce((total, s) => total + count(s), 0);
  const rejected = sum((s) => s.readSkipCount + s.processSkipCount + s.writeSkipCount);
  const starts = executions.length > 1 ? ` (in ${executions.length} executions)` : '';
  console.log(
    `${last.status} (${last.exitStatus?.code ?? '-'}): ${sum((s) => s.readCount)} records read, ` +
      `${sum((s) => s.writeCount)} written, ${rejected} rejected${starts}` +
      (last.exitStatus?.description && last.status !== 'COMPLETED' ? `\n${last.exitStatus.description}` : ''),
  );
  let listed = 0;
  for (const execution of [...executions].reverse()) {
    const skips = execution.steps.reduce((n, s) => n + s.readSkipCount + s.processSkipCount + s.writeSkipCount, 0);
    if (skips === 0 || listed >= 20) continue;
    const path = `/api/jobs/executions/${execution.id}/rejects`;
    const response = await fetch(`${service.url}${path}?limit=${20 - listed}`, {
      headers: { 'x-api-key': service.apiKey },
    }).catch(() => null);
    const page = response ? await answerOf<IJobRejectList>(response).catch(() => null) : null;
    for (const r of page?.items ?? [])
      console.log(`  line ${r.line}${r.column ? `, column ${r.column}` : ''}: ${r.code} ${r.message}`);
    listed += page?.items.length ?? 0;
    if (skips > (page?.items.length ?? 0)) console.log(`  … all of them: GET ${path}`);
  }
}

/** One line on a terminal, redrawn in place; a line every 10 % elsewhere (a log, a pipe). */
class ProgressBar {
  private shown = -1;
  private drawn = false;

  show(
    what: string,
    done: number,
    total: number | null,
    unit: string,
    eta?: number | null,
    perSecond?: number | null,
  ): void {
    const share = total ? Math.min(1, done / total) : null;
    if (!process.stderr.isTTY) {
      const tenth = share === null ? -1 : Math.floor(share * 10);
      if (tenth === this.shown) return;
      this.shown = tenth;
    }
    const bar =
      share === null ? '' : `[${'#'.repeat(Math.round(share * 30)).padEnd(30, '.')}] ${(share * 100).toFixed(0)}% `;
    const rate = perSecond ? `, ${human(perSecond)} ${unit}/s` : '';
    const line = `${what} ${bar}${human(done)}${total ? `/${human(total)}` : ''} ${unit}${rate}${eta ? `, ${eta} s left` : ''}`;
    process.stderr.write(process.stderr.isTTY ? `\r${line}\u001b[K` : `${line}\n`);
    this.drawn = process.stderr.isTTY;
  }

  /** A line of its own, below the bar; the bar is drawn again at its next update. */
  note(line: string): void {
    this.done();
    process.stderr.write(`${line}\n`);
  }

  done(): void {
    if (this.drawn) process.stderr.write('\n');
    this.drawn = false;
    this.shown = -1;
  }
}

function human(count: number): string {
  const units = ['', 'k', 'M', 'G', 'T'];
  let value = count;
  let unit = 0;
  for (; value >= 1000 && unit < units.length - 1; unit++) value /= 1000;
  return `${unit === 0 ? value : value.toFixed(1)}${units[unit]}`;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = EXIT.refused;
  },
);
