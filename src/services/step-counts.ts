/** Counters of a step (Spring Batch's names): a job's step, or a step of one of the queue's chunks. */
export interface StepCounts {
  readCount: number;
  writeCount: number;
  filterCount: number;
  readSkipCount: number;
  processSkipCount: number;
  writeSkipCount: number;
  commitCount: number;
  rollbackCount: number;
}

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
