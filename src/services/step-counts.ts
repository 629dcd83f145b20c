import type { StepCounts } from '../interfaces/job.interfaces';

export type { StepCounts };

/** The counters in the order of Spring Batch's names, as the columns of the steps' tables. */
export const COUNTERS = [
  'readCount',
  'writeCount',
  'filterCount',
  'readSkipCount',
  'processSkipCount',
  'writeSkipCount',
  'commitCount',
  'rollbackCount',
] as const;

export function emptyCounts(): StepCounts {
  return Object.fromEntries(COUNTERS.map((counter) => [counter, 0])) as unknown as StepCounts;
}
