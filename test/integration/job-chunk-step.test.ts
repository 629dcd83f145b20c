import assert from 'node:assert/strict';
import { Injectable, Module } from '@nestjs/common';
import { IsInt, IsString, Max, MinLength } from 'class-validator';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { PoolClient } from 'pg';
import {
  AfterChunkError,
  AfterProcess,
  AfterRead,
  AfterWrite,
  BatchJob,
  BeforeChunk,
  BeforeProcess,
  BeforeWrite,
  chunk,
  compose,
  job,
  OnProcessError,
  OnReadError,
  OnWriteError,
  pagingReader,
  validate,
  type StepRun,
} from '../../src/services/jobs';
import { Jobs, startJobs } from '../support/jobs-app';

/** An error worth trying again (a timeout, say). */
class Flaky extends Error {}

interface Input {
  id: number;
  name: string;
}

/** What the test sets each run: which calls fail, and what the steps saw. */
const world = {
  /** id → how many of its processings fail (Flaky; `Infinity`: always), or TypeError when negative. */
  processFailures: new Map<number, number>(),
  /** Writes of a chunk holding this id that fail (Flaky) before one goes through. */
  writeFailures: { id: -1, times: 0 },
  readFails: false,
  calls: new Map<number, number>(),
  inFlight: 0,
  peak: 0,
  failedAt: [] as number[],
  transactionsAt: [] as number[],
  events: [] as string[],
};

function flakyProcessor(input: Input): Input {
  const calls = (world.calls.get(input.id) ?? 0) + 1;
  world.calls.set(input.id, calls);
  const failures = world.processFailures.get(input.id) ?? 0;
  if (failures < 0) throw new TypeError(`no retry for ${input.id}`);
  if (calls <= failures) {
    world.failedAt.push(Date.now());
    throw new Flaky(`try ${calls} of ${input.id} failed`);
  }
  return input;
}

async function write(tx: PoolClient, items: Input[]): Promise<void> {
  const [{ started }] = (await tx.query<{ started: Date }>(`SELECT now() AS started`)).rows;
  world.transactionsAt.push(started.getTime());
  const { writeFailures } = world;
  if (items.length > 1 && items.some((i) => i.id === writeFailures.id) && writeFailures.times > 0) {
    writeFailures.times -= 1;
    world.failedAt.push(Date.now());
    throw new Flaky('the write timed out');
  }
  await tx.query(`INSERT INTO outputs (id, name) SELECT * FROM unnest($1::int[], $2::text[])`, [
    items.map((i) => i.id),
    items.map((i) => i.name),
  ]);
}

const reader = pagingReader<Input>({ table: 'inputs', key: 'id' });

@BatchJob()
@Injectable()
class RetryJob {
  readonly definition = job('retry')
    .describe('retries what is Flaky, then skips')
    .option('skipLimit', { type: 'integer', description: 'items skipped at most' })
    .step(
      'copy',
      chunk<Input>({
        chunkSize: 5,
        reader: async (tx, step, count) => {
          if (world.readFails) throw new Error('the reader failed');
          return reader(tx, step, count);
        },
        processor: flakyProcessor,
        writer: write,
        retry: { on: [Flaky], limit: 3, backoff: { initialMs: 200, multiplier: 2, maxMs: 300 } },
      }),
    )
    .build();

  @BeforeChunk('retry')
  beforeChunk(): void {
    world.events.push('beforeChunk');
  }

  @OnReadError('retry')
  readError(_step: StepRun, error: Error): void {
    world.events.push(`readError ${error.message}`);
  }

  @OnProcessError('retry')
  processError(_step: StepRun, item: Input, error: Error): void {
    world.events.push(`processError ${item.id} ${error.constructor.name}`);
  }

  @OnWriteError('retry')
  writeError(_step: StepRun, items: Input[]): void {
    world.events.push(`writeError ${items.map((i) => i.id).join(',')}`);
  }

  @AfterChunkError('retry')
  chunkError(_step: StepRun, error: Error): void {
    world.events.push(`afterChunkError ${error.constructor.name}`);
  }
}

class Named {
  @IsInt()
  @Max(8)
  id: number;

  @IsString()
  @MinLength(2)
  name: string;
}

@BatchJob()
@Injectable()
class ConcurrentJob {
  readonly definition = job('concurrent')
    .describe('processes 4 items at a time, through compose and validate')
    .option('skipLimit', { type: 'integer', description: 'items skipped at most' })
    .step(
      'copy',
      chunk<Input>({
        chunkSize: 6,
        concurrency: 4,
        reader,
        processor: compose(
          async (input: Input) => {
            world.inFlight += 1;
            world.peak = Math.max(world.peak, world.inFlight);
            await delay(5 * (10 - (input.id % 6))); // the later items of a chunk finish first
            world.inFlight -= 1;
            return input.id === 4 ? null : input;
          },
          validate(Named),
          (named: Named) => ({ id: named.id, name: named.name.toUpperCase() }),
        ),
        writer: write,
      }),
    )
    .build();

  @AfterRead('concurrent')
  afterRead(_step: StepRun, item: Input): void {
    world.events.push(`afterRead ${item.id}`);
  }

  @BeforeProcess('concurrent')
  beforeProcess(_step: StepRun, item: Input): void {
    world.events.push(`beforeProcess ${item.id}`);
  }

  @AfterProcess('concurrent')
  afterProcess(_step: StepRun, item: Input, result: Input | null): void {
    world.events.push(`afterProcess ${item.id} ${result?.name ?? null}`);
  }

  @BeforeWrite('concurrent')
  beforeWrite(_step: StepRun, items: Input[]): void {
    world.events.push(`beforeWrite ${items.map((i) => i.id).join(',')}`);
  }

  @AfterWrite('concurrent')
  afterWrite(_step: StepRun, items: Input[]): void {
    world.events.push(`afterWrite ${items.map((i) => i.id).join(',')}`);
  }
}

@Module({ providers: [RetryJob, ConcurrentJob] })
class ChunkJobsModule {}

/** The chunk step's fault tolerance (retry with back-off, then skip), its listeners, processors and concurrency. */
describe('job toolkit: the chunk step', () => {
  let jobs: Jobs;
  let run = 0;
  before(async () => {
    jobs = await startJobs({ targets: ['public.outputs'] }, [ChunkJobsModule]);
    await jobs.db.query(`
      CREATE TABLE inputs (id int PRIMARY KEY, name text NOT NULL);
      INSERT INTO inputs SELECT g, 'n' || g FROM generate_series(1, 10) g;
      CREATE TABLE outputs (id int PRIMARY KEY, name text NOT NULL, at serial);`);
  });
  after(() => jobs.close());
  beforeEach(async () => {
    await jobs.db.query(`TRUNCATE outputs RESTART IDENTITY`);
    Object.assign(world, {
      processFailures: new Map(),
      writeFailures: { id: -1, times: 0 },
      readFails: false,
      calls: new Map(),
      inFlight: 0,
      peak: 0,
      failedAt: [],
      transactionsAt: [],
      events: [],
    });
  });

  async function launch(name: string, skipLimit: number) {
    run += 1;
    const launched = await jobs.operator.launch(jobs.client, name, { runId: String(run) }, { skipLimit });
    await jobs.runAll();
    const done = await jobs.execution(launched.id);
    const [{ context }] = await jobs.db.query<{ context: Record<string, unknown> }>(
      `SELECT execution_context AS context FROM batch.step_executions WHERE job_execution_id = $1`,
      [launched.id],
    );
    const written = await jobs.db.query<{ id: number; name: string }>(`SELECT id, name FROM outputs ORDER BY at`);
    return { done, step: done.steps[0], context, written };
  }

  it('a processor’s Flaky error is retried per item, then skipped; others skip at once', async () => {
    world.processFailures = new Map([
      [3, 2], // goes through at its third try
      [7, Infinity], // never: skipped after 3 tries
      [9, -1], // a TypeError: not retried, skipped
    ]);
    const { done, step, context, written } = await launch('retry', 2);
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual(
      written.map((w) => w.id),
      [1, 2, 3, 4, 5, 6, 8, 10],
    );
    assert.deepEqual([step.processSkipCount, step.writeCount, step.rollbackCount], [2, 8, 4]);
    assert.equal(context.retryCount, 4);
    assert.equal(step.retryCount, 4, 'shown with the step');
    // items processed before a retry are not processed again; 3 and 7 were tried 3 times each
    assert.deepEqual(
      [...world.calls].sort((a, b) => a[0] - b[0]).map(([, calls]) => calls),
      [1, 1, 3, 1, 1, 1, 3, 1, 1, 1],
    );
    assert.ok(world.events.includes('processError 9 TypeError'));
    assert.equal(world.events.filter((e) => e === 'processError 7 Flaky').length, 3);
    assert.equal(world.events.filter((e) => e === 'afterChunkError ChunkRetry').length, 4);
  });

  it('a writer’s Flaky error: the chunk rolled back, waited for with no transaction open, written again', async () => {
    world.writeFailures = { id: 6, times: 2 };
    const { done, step, context, written } = await launch('retry', 0);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual(
      written.map((w) => w.id),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.deepEqual([step.writeCount, step.rollbackCount, context.retryCount, step.retryCount], [10, 2, 2, 2]);
    assert.equal(world.calls.get(6), 1, 'the chunk’s items are not processed again');
    // each attempt's transaction began after the back-off (200 ms, then 300 ms at most) that followed the failure
    const attempts = world.transactionsAt.slice(1, 4);
    assert.ok(attempts[1] >= world.failedAt[0] + 190, 'the second attempt began after the first back-off');
    assert.ok(attempts[2] >= world.failedAt[1] + 290, 'the third attempt began after the second back-off');
    assert.deepEqual(
      world.events.filter((e) => e.startsWith('writeError')),
      ['writeError 6,7,8,9,10', 'writeError 6,7,8,9,10'],
    );
  });

  it('a write still failing after the retries: items written one at a time, the one at fault skipped', async () => {
    world.writeFailures = { id: 2, times: 3 };
    const { step, context, written } = await launch('retry', 0);
    // single items never fail in `write`: the chunk goes in item by item after the third failure
    assert.deepEqual([step.writeCount, step.writeSkipCount, context.retryCount], [10, 0, 2]);
    assert.equal(written.length, 10);
  });

  it('a reader that fails: told to @OnReadError and @AfterChunkError, the step fails', async () => {
    world.readFails = true;
    const { done } = await launch('retry', 0);
    assert.equal(done.status, 'FAILED');
    assert.deepEqual(world.events, ['beforeChunk', 'readError the reader failed', 'afterChunkError Error']);
  });

  it('concurrency: 4 items at a time, written in the order read; compose, filter and validate', async () => {
    const { step, written } = await launch('concurrent', 2);
    assert.equal(world.peak, 4);
    assert.deepEqual(written, [
      { id: 1, name: 'N1' },
      { id: 2, name: 'N2' },
      { id: 3, name: 'N3' },
      { id: 5, name: 'N5' },
      { id: 6, name: 'N6' },
      { id: 7, name: 'N7' },
      { id: 8, name: 'N8' },
    ]);
    assert.deepEqual([step.filterCount, step.processSkipCount], [1, 2]);
    const stored = await jobs.db.query<{ code: string; message: string }>(
      `SELECT code, message FROM batch.job_rejects ORDER BY id`,
    );
    assert.deepEqual(stored.at(-1), { code: 'VALIDATION_FAILED', message: 'id must not be greater than 8' });
  });

  it('item listeners: after each read, around each processing that returns, around each write', async () => {
    await launch('concurrent', 2);
    const { events } = world;
    const kinds = (prefix: string) => events.filter((e) => e.startsWith(prefix));
    assert.deepEqual(
      kinds('afterRead'),
      Array.from({ length: 10 }, (_, i) => `afterRead ${i + 1}`),
    );
    assert.equal(kinds('beforeProcess').length, 10);
    // 4 filtered (null); 9 and 10 refused by validate: no afterProcess
    assert.deepEqual(kinds('afterProcess').sort(), [
      'afterProcess 1 N1',
      'afterProcess 2 N2',
      'afterProcess 3 N3',
      'afterProcess 4 null',
      'afterProcess 5 N5',
      'afterProcess 6 N6',
      'afterProcess 7 N7',
      'afterProcess 8 N8',
    ]);
    assert.deepEqual(
      events.filter((e) => e.includes('Write')),
      ['beforeWrite 1,2,3,5,6', 'afterWrite 1,2,3,5,6', 'beforeWrite 7,8', 'afterWrite 7,8'],
    );
    // each chunk's items read before any is processed; all processed before the chunk's write
    const at = (event: string) => events.indexOf(event);
    assert.ok(at('afterRead 6') < Math.min(...[1, 2, 3, 4, 5, 6].map((id) => at(`beforeProcess ${id}`))));
    assert.ok(at('beforeWrite 1,2,3,5,6') > at('afterProcess 6 N6'));
    assert.ok(at('afterRead 7') > at('afterWrite 1,2,3,5,6'));
  });
});
