import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { ImportUploads } from '../../src/services/imports/import-uploads.service';
import { Jobs, startJobs } from '../support/jobs-app';

/** Rows loaded or copied: a target that takes each in a few ms (SLOW_ROW) takes them in seconds, whatever the load. */
const ROWS = 3000;
const CHUNK = 60;
/**
 * Each row a target takes costs this much, deterministically: the run's time is mostly the rows', so a rate measured
 * over the first chunks holds for the rest, on a loaded machine too.
 */
const SLOW_ROW = `CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$`;

interface Sample {
  at: number;
  execution: IJobExecution;
}

/**
 * Runs `run` while reading the execution every 100 ms, as a caller following it would; `seen` is told each sample.
 * Answers the samples and when the run ended.
 */
async function follow(
  jobs: Jobs,
  id: string,
  run: () => Promise<void>,
  seen: (execution: IJobExecution) => Promise<void> = async () => undefined,
): Promise<{ samples: Sample[]; end: number }> {
  const samples: Sample[] = [];
  let running = true;
  const reading = (async () => {
    while (running) {
      const execution = await jobs.execution(id);
      samples.push({ at: Date.now(), execution });
      await seen(execution);
      await delay(100);
    }
  })();
  await run();
  const end = Date.now();
  running = false;
  await reading;
  return { samples, end };
}

/**
 * The rate and the time left as the execution showed them, against what the run then took: within 2× once the
 * execution did a tenth of its own work (from `base`), while two seconds or more were left (the time left is in whole
 * seconds). Answers how many samples were checked.
 */
function checkEstimates({ samples, end }: { samples: Sample[]; end: number }, base: number, unit: string): number {
  const own = samples.filter(({ execution: e }) => e.status === 'STARTED' && e.progress?.total);
  const total = own[0].execution.progress!.total!;
  const start = samples.find(({ execution: e }) => e.status === 'STARTED')!.at;
  const rate = (total - base) / ((end - start) / 1000);
  let checked = 0;
  for (const { at, execution } of own) {
    const progress = execution.progress!;
    const left = (end - at) / 1000;
    if ((progress.done - base) / (total - base) < 0.1 || left < 2) continue;
    assert.equal(progress.unit, unit);
    const shown = `${JSON.stringify(progress)}, ${left.toFixed(1)} s left, ${rate.toFixed(0)} ${unit}/s`;
    assert.ok(progress.perSecond && progress.perSecond < rate * 2 && progress.perSecond > rate / 2, shown);
    assert.ok(progress.etaSeconds !== null && progress.etaSeconds < left * 2 && progress.etaSeconds > left / 2, shown);
    checked += 1;
  }
  return checked;
}

describe('job progress: the rate and the time left against the real duration', () => {
  let jobs: Jobs;

  before(async () => {
    jobs = await startJobs({ targets: ['public.slow_items', 'public.slow_copy'], sources: ['public.copy_source'] });
    await jobs.db.query(`${SLOW_ROW};
      CREATE TABLE slow_items (id int PRIMARY KEY, qty int, note text);
      CREATE TABLE slow_copy (id int PRIMARY KEY, qty int, note text);
      CREATE TRIGGER slow BEFORE INSERT ON slow_items FOR EACH ROW EXECUTE FUNCTION slow_row();
      CREATE TRIGGER slow BEFORE INSERT ON slow_copy FOR EACH ROW EXECUTE FUNCTION slow_row();
      CREATE TABLE copy_source AS SELECT i AS id, i % 100 AS qty, 'note ' || i AS note FROM generate_series(1, ${ROWS}) i;
      ALTER TABLE copy_source ADD PRIMARY KEY (id)`);
  });
  after(() => jobs.close());

  it("an import's bytes per second, stopped and restarted: the restart's own bytes over its own time", async () => {
    const csv = 'id,qty,note\n' + Array.from({ length: ROWS }, (_, i) => `${i},${i % 100},note ${i}\n`).join('');
    const launched = await jobs.app.get(ImportUploads).upload(
      jobs.client,
      {
        query: { target: 'slow_items', chunkSize: String(CHUNK) },
        contentType: 'text/csv',
        contentEncoding: undefined,
      },
      Readable.from([Buffer.from(csv)]),
    );
    let stopped = false;
    await follow(
      jobs,
      launched.id,
      () => jobs.runAll(),
      async ({ progress }) => {
        if (!stopped && progress?.total && progress.done / progress.total >= 0.4) {
          stopped = true;
          await jobs.operator.stop(jobs.client, launched.id);
        }
      },
    );
    const halfway = await jobs.execution(launched.id);
    assert.equal(halfway.status, 'STOPPED');
    assert.ok(halfway.progress);
    const base = halfway.progress.done;
    assert.ok(base > 0 && base < csv.length * 0.7, `stopped at ${base} of ${csv.length}`);

    const restarted = await jobs.operator.restart(jobs.client, launched.id);
    const second = await follow(jobs, restarted.id, () => jobs.runAll());
    const done = await jobs.execution(restarted.id);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual(
      [done.progress?.done, done.progress?.total, done.progress?.etaSeconds],
      [csv.length, csv.length, 0],
    );
    assert.ok(checkEstimates(second, base, 'bytes') >= 5, 'enough of the run was seen');
  });

  it("a copy's rows per second, in two partitions: their sums over the step's time", async () => {
    const launched = await jobs.operator.launch(
      jobs.client,
      'copy',
      { source: 'copy_source', target: 'slow_copy' },
      { chunkSize: CHUNK, partitions: 2 },
    );
    const run = await follow(jobs, launched.id, () => jobs.runAll());
    const done = await jobs.execution(launched.id);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual([done.progress?.done, done.progress?.total, done.progress?.etaSeconds], [ROWS, ROWS, 0]);
    assert.ok(checkEstimates(run, 0, 'rows') >= 5, 'enough of the run was seen');
  });
});
