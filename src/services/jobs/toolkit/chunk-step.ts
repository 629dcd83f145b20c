import type { PoolClient } from 'pg';
import {
  tasklet,
  underSavepoint,
  type ChunkOrientedStep,
  type ItemWriter,
  type StepRun,
  type TaskletStep,
  type WriteRefusal,
} from '../job-definition';
import { skip } from '../job-skips';
import { backoffMs, ChunkRetry, isRetryable } from './retry';

/**
 * A chunk-oriented step (Spring Batch's fault-tolerant one): each chunk reads up to chunkSize items, processes them
 * (`concurrency` at a time) and writes them in one transaction with the step's position.
 *
 * An item the processor refuses, or the writer refuses once it writes the chunk's items one at a time (each under a
 * savepoint), is skipped (recorded as a reject) while the `skipLimit` option (default 0) allows, else the step fails.
 * With `retry`, an error it names is first tried again: the chunk is rolled back, the runner waits the back-off outside
 * any transaction, and runs the chunk again from the same position, up to `retry.limit` attempts of an item's
 * processing or of the chunk's write; the items processed in an attempt before are not processed again.
 * The retries are counted in `step.context.retryCount`, saved with the chunk that went through.
 */
export function chunk<T, U = T>(definition: ChunkOrientedStep<T, U>): TaskletStep {
  const { reader, writer, retry, describe = (item: T) => JSON.stringify(item) } = definition;
  const processing: Processing<T, U> = {
    process: definition.processor,
    retry,
    concurrency: Math.max(1, Math.trunc(definition.concurrency ?? 1)),
    describe,
  };
  const attempts = new WeakMap<StepRun, Attempt<U>>();

  const execute = async (tx: PoolClient, step: StepRun) => {
    step.notify('beforeChunk', step);
    const size = Number(step.job.options.chunkSize ?? definition.chunkSize);
    const attempt = attemptOf(attempts, step);
    let items: T[];
    try {
      items = await reader(tx, step, size);
    } catch (error) {
      step.notify('onReadError', step, error);
      throw error;
    }
    step.counts.readCount += items.length;
    for (const item of items) step.notify('afterRead', step, item);
    const processed = await processAll(step, items, attempt, processing);
    await writeOrSkip(tx, step, processed, writer, describe, (error) => {
      if (!isRetryable(retry, error) || attempt.writeFailures + 1 >= retry!.limit) return;
      attempt.writeFailures += 1;
      attempt.retries += 1;
      throw new ChunkRetry(backoffMs(retry!.backoff, attempt.writeFailures), error);
    });
    if (attempt.retries > 0) step.context.retryCount = Number(step.context.retryCount ?? 0) + attempt.retries;
    return items.length < size ? ('FINISHED' as const) : ('CONTINUABLE' as const);
  };

  return tasklet(async (tx, step) => {
    try {
      return await execute(tx, step);
    } catch (error) {
      step.notify('afterChunkError', step, error);
      throw error;
    }
  }, definition.open);
}

/** How a chunk step processes its items. */
interface Processing<T, U> {
  /** None: each item is written as read. */
  process?: (item: T, step: StepRun) => Promise<U | null> | U | null;
  retry: ChunkOrientedStep<T, U>['retry'];
  concurrency: number;
  describe: (item: T) => string;
}

/** The chunk's attempt so far: the same one while the chunk is run again from the same position. */
function attemptOf<U>(attempts: WeakMap<StepRun, Attempt<U>>, step: StepRun): Attempt<U> {
  const position = JSON.stringify(step.context);
  let attempt = attempts.get(step);
  if (!attempt || attempt.position !== position) {
    attempt = { position, outcomes: new Map(), itemFailures: new Map(), writeFailures: 0, retries: 0 };
    attempts.set(step, attempt);
  }
  return attempt;
}

/**
 * The chunk's items processed, `concurrency` at a time, each once per attempt (an item an attempt before processed
 * keeps its outcome): the outputs in the order read; a refused item skipped, a filtered one counted. An error the
 * retry names throws ChunkRetry (after the back-off the chunk runs again), within its limit.
 */
async function processAll<T, U>(
  step: StepRun,
  items: T[],
  attempt: Attempt<U>,
  { process, retry, concurrency, describe }: Processing<T, U>,
): Promise<{ item: T; output: U }[]> {
  if (!process) return items.map((item) => ({ item, output: item as unknown as U }));
  let wait: number | null = null;
  await inTurns(items.length, concurrency, async (index) => {
    const item = items[index];
    // where nothing is tried again, an item is known by itself: no attempt after this one reads the same object
    const seen: unknown = retry ? JSON.stringify(item) : item;
    if (attempt.outcomes.get(index)?.item === seen) return;
    try {
      step.notify('beforeProcess', step, item);
      const output = await process(item, step);
      step.notify('afterProcess', step, item, output);
      attempt.outcomes.set(index, { item: seen, output });
    } catch (error) {
      step.notify('onProcessError', step, item, error);
      const failed = (attempt.itemFailures.get(seen) ?? 0) + 1;
      attempt.itemFailures.set(seen, failed);
      if (isRetryable(retry, error) && failed < retry!.limit) {
        attempt.retries += 1;
        wait = Math.max(wait ?? 0, backoffMs(retry!.backoff, failed));
      } else attempt.outcomes.set(index, { item: seen, refused: error });
    }
  });
  if (wait !== null) throw new ChunkRetry(wait, 'an item to process again');
  const processed: { item: T; output: U }[] = [];
  items.forEach((item, index) => {
    const outcome = attempt.outcomes.get(index)!;
    if ('refused' in outcome) skip(step, outcome.refused, describe(item), {}, 'process');
    else if (outcome.output === null) step.counts.filterCount += 1;
    else processed.push({ item, output: outcome.output });
  });
  return processed;
}

interface Attempt<U> {
  /** The step's context when the chunk began: the same when it is run again after a rollback. */
  position: string;
  /**
   * What became of each item, by its place in the chunk, with the item (as JSON) it is of: its output, or the error
   * that refused it for good (not retried, or retried up to the limit).
   */
  outcomes: Map<number, { item: unknown; output: U | null } | { item: unknown; refused: unknown }>;
  /** Failed attempts to process an item (by its JSON where a retry may come, else by the item itself). */
  itemFailures: Map<unknown, number>;
  writeFailures: number;
  /** Retries made for this chunk, across its attempts. */
  retries: number;
}

/** Runs `work` for 0..count-1, `concurrency` at a time; waits for all of them even when one fails. */
async function inTurns(count: number, concurrency: number, work: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
}

/**
 * Writes the chunk's outputs under a savepoint; the items the writer refuses itself (WriteRefusal) are skipped. When
 * the writer throws, `refused` may ask for the chunk again (by throwing ChunkRetry), else each item is written alone
 * under a savepoint and the ones refused are skipped.
 */
async function writeOrSkip<T, U>(
  tx: PoolClient,
  step: StepRun,
  processed: { item: T; output: U }[],
  writer: ItemWriter<U>,
  describe: (item: T) => string,
  refused: (error: unknown) => void,
): Promise<void> {
  if (processed.length === 0) return;
  const write = async (part: { item: T; output: U }[]): Promise<{ failure: unknown } | null> => {
    const outputs = part.map((p) => p.output);
    const refusals: WriteRefusal[] = [];
    let failure: unknown = null;
    step.notify('beforeWrite', step, outputs);
    const written = await underSavepoint(
      tx,
      async () => refusals.push(...((await writer(tx, outputs, step)) ?? [])),
      (error) => (failure = error),
    );
    if (!written) return { failure };
    for (const { index, error } of refusals) {
      step.notify('onWriteError', step, [outputs[index]], error);
      skip(step, error, describe(part[index].item), {}, 'write');
    }
    const refused = new Set(refusals.map((r) => r.index));
    step.notify('afterWrite', step, refused.size === 0 ? outputs : outputs.filter((_, i) => !refused.has(i)));
    step.counts.writeCount += part.length - refusals.length;
    return null;
  };
  const whole = await write(processed);
  if (whole === null) return;
  step.notify(
    'onWriteError',
    step,
    processed.map((p) => p.output),
    whole.failure,
  );
  refused(whole.failure);
  step.counts.rollbackCount += 1;
  for (const one of processed) {
    const alone = await write([one]);
    if (alone === null) continue;
    step.notify('onWriteError', step, [one.output], alone.failure);
    skip(step, alone.failure, describe(one.item), {}, 'write');
  }
}
