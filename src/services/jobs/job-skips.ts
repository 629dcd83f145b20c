import type { IJobReject } from '../../interfaces/job.interfaces';
import { quoted } from '../quoted';
import type { StepCounts } from '../step-counts';
import type { StepRun } from './job-definition';

/**
 * The skip policy of a job's steps (Spring Batch's): an item refused is recorded as a reject and counted as a skip of
 * its kind while the `skipLimit` option allows; one more fails the step, and the step's description then says which
 * item, why, where the rejects are listed and what to change.
 */

/** Which counter a skip counts in: an item that could not be read, processed, or written. */
export type SkipKind = 'read' | 'process' | 'write';

const COUNTER: Record<SkipKind, keyof StepCounts> = {
  read: 'readSkipCount',
  process: 'processSkipCount',
  write: 'writeSkipCount',
};

/** Where a skipped item is (an item of a file), and the value refused, for the description should it fail the step. */
export type SkipPlace = Partial<Pick<IJobReject, 'line' | 'byteOffset' | 'column'>> & { value?: string | null };

/**
 * Thrown when a step skipped more items than its `skipLimit` option allows: the step fails. `reject` is the item that
 * was one too many; it and the chunk's rejects before it are recorded as the step ends, though the chunk rolls back.
 */
export class SkipLimitExceeded extends Error {
  constructor(
    readonly limit: number,
    cause: unknown,
    readonly reject: IJobReject,
    readonly value: string | null = null,
  ) {
    super(`${limit + 1} items refused, more than the skip limit of ${limit}`, { cause });
  }
}

/**
 * Records a skipped item (where it is, for an item of a file) and counts it as a skip of its `kind`; fails the step
 * (SkipLimitExceeded) when that is one more than the `skipLimit` option allows.
 */
export function skip(
  step: StepRun,
  error: unknown,
  record: string | null,
  at: SkipPlace = {},
  kind: SkipKind = 'write',
): void {
  const limit = Number(step.job.options.skipLimit ?? 0);
  const { code, message } = errorOf(error);
  const { value = null, ...place } = at;
  const reject: IJobReject = { line: null, byteOffset: null, column: null, ...place, code, message, record };
  const skipped = step.counts.readSkipCount + step.counts.processSkipCount + step.counts.writeSkipCount;
  step.counts[COUNTER[kind]] += 1;
  step.reject(reject);
  if (skipped + step.skippedBefore >= limit) throw new SkipLimitExceeded(limit, error, reject, value);
}

function errorOf(error: unknown): { code: string; message: string } {
  const e = error as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : 'ITEM_FAILED';
  return { code, message: String(e?.message ?? error).slice(0, 2000) };
}

/**
 * What a step that went past its skip limit says, as the execution's description: the item (its line, column and
 * value, or the item itself), why it was refused, where the rejects are listed, and what to change (`advice`: how a
 * user of this job raises its skipLimit, given the limit now).
 */
export function skipLimitDescription(error: SkipLimitExceeded, executionId: string, advice: string): string {
  const { reject, limit, value } = error;
  // cut, so that what to change fits in the description (2,000 characters)
  const cut = (text: string, most: number) => (text.length > most ? `${text.slice(0, most)}…` : text);
  const item = reject.record === null ? null : cut(reject.record, 200);
  const place = [
    reject.line !== null ? `line ${reject.line}` : item,
    reject.column !== null ? `column ${reject.column}` : null,
    value !== null ? `value ${quoted(value)}` : null,
  ].filter((part) => part !== null);
  const refused =
    limit === 0 ? 'nothing refused may be skipped' : `${limit} refused may be skipped, and this is one more`;
  return (
    `${place.length ? `${place.join(', ')}: ` : ''}${reject.code} ${cut(reject.message, 600)}. ` +
    `The skip limit is ${limit} (the option skipLimit): ${refused}; ` +
    `the rejects are listed by GET /api/jobs/executions/${executionId}/rejects. ` +
    `To skip them and go on, ${advice}: it goes on after the last committed chunk.`
  );
}
