import type { IJobProgress } from '../../../interfaces/job.interfaces';

/** A step's progress as it saves it in its context (StepRun.progress). */
export interface StepProgress {
  unit?: string;
  done?: number;
  total?: number | null;
}

/**
 * How far an execution is, by its current step's progress, at the pace of the `read` items of its steps over the
 * time it ran (till `endedAt`, or now).
 */
export function progressOf(
  progress: StepProgress | null,
  read: number,
  startedAt: Date | null,
  endedAt: Date | null,
): IJobProgress {
  const done = Number(progress?.done ?? 0);
  const total = progress?.total === null || progress?.total === undefined ? null : Number(progress.total);
  const seconds = startedAt ? ((endedAt ?? new Date()).getTime() - startedAt.getTime()) / 1000 : 0;
  const perSecond = seconds > 0 ? Math.round((read / seconds) * 10) / 10 : null;
  const etaSeconds =
    total !== null && perSecond ? Math.max(0, Math.round((total - done) / perSecond)) : total === done ? 0 : null;
  return { unit: progress?.unit ?? 'items', done, total, perSecond, etaSeconds };
}
