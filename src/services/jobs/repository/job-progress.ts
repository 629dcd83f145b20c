import type { IJobProgress } from '../../../interfaces/job.interfaces';

/**
 * A step's progress as it saves it in its context (StepRun.progress): `done` of `total` in `unit`s, and `base`, what
 * was done when this execution took the step on (the position a restart resumed from), so that the rate counts this
 * execution's own work only.
 */
export interface StepProgress {
  unit?: string;
  done?: number;
  total?: number | null;
  base?: number;
}

/** When the current step's work was measured, in seconds (the database's clock, read by the view). */
export interface ProgressTiming {
  /** From the step's start in this execution to its last committed chunk. */
  worked: number;
  /** Since that chunk committed (0 once the execution ended). */
  sinceCommit: number;
  /** Whether the execution still runs: an ended one has no time left, or none known. */
  running: boolean;
}

/**
 * How far an execution is, by its current step's progress: the rate is the units this execution did (done − base)
 * over the time it took to commit them, and the time left is what remains at that rate, counted from the last commit.
 * Once that time has run out with work left (a chunk slower than the ones before), the time left is unknown (null)
 * rather than zero. Before a chunk committed, the rate is 0 and the time left unknown; before a step reported any
 * progress (`progress` null), nothing is done yet, in `items`.
 */
export function progressOf(progress: StepProgress | null, timing: ProgressTiming): IJobProgress {
  const done = Number(progress?.done ?? 0);
  const total = progress?.total === null || progress?.total === undefined ? null : Number(progress.total);
  const own = done - Number(progress?.base ?? 0);
  const perSecond = timing.worked > 0 && own > 0 ? Math.round((own / timing.worked) * 10) / 10 : 0;
  let etaSeconds: number | null = null;
  if (total !== null && done >= total) etaSeconds = 0;
  else if (total !== null && perSecond && timing.running) {
    const left = (total - done) / perSecond - timing.sinceCommit;
    etaSeconds = left > 0 ? Math.max(1, Math.round(left)) : null;
  }
  return { unit: progress?.unit ?? 'items', done, total, perSecond, etaSeconds };
}

/**
 * A step's context as a new execution resumes it from an earlier one's: what that one had done is the base of this
 * one's rate.
 */
export function resumedContext(context: Record<string, unknown>): Record<string, unknown> {
  const progress = context.progress as StepProgress | undefined;
  if (!progress) return context;
  return { ...context, progress: { ...progress, base: Number(progress.done ?? 0) } };
}
