import type { IJobReject } from '../../interfaces/job.interfaces';
import { emptyCounts } from '../step-counts';
import type { ItemListeners, JobRun, StepRun } from './job-definition';
import type { JobRegistry } from './job-registry.service';
import type { StepProgress } from './repository/job-progress';
import type { StepRow } from './repository/job-rows';
import type { SkippedAtEnd } from './repository/step-executions';

/**
 * A step's StepRun across its chunks: the context as last committed plus what the chunk in flight changed (rolled
 * back with it), the chunk's counts and rejects, and the skips committed before.
 */
export class ChunkContext implements StepRun {
  readonly name: string;
  readonly partition: string | null;
  context: Record<string, unknown>;
  counts = emptyCounts();
  rejects: IJobReject[] = [];
  exitCode: string | null = null;
  skipped: number;
  private saved: Record<string, unknown>;

  constructor(
    readonly job: JobRun,
    row: StepRow,
    private readonly registry: JobRegistry,
  ) {
    this.name = row.name;
    this.partition = row.partition;
    this.saved = row.execution_context;
    this.context = structuredClone(this.saved);
    this.skipped = row.skips;
  }

  get skippedBefore(): number {
    return this.skipped;
  }

  reject(reject: IJobReject): void {
    this.rejects.push(reject);
  }

  progress(done: number, total: number | null, unit = 'items'): void {
    const base = (this.context.progress as StepProgress | undefined)?.base ?? 0;
    this.context.progress = { unit, done, total, base } satisfies StepProgress;
  }

  notify<K extends keyof ItemListeners>(kind: K, ...args: Parameters<ItemListeners[K]>): void {
    this.registry.notify(this.job.job, kind, ...args);
  }

  /** The chunk committed: its context is the saved one, its counts are the step's. */
  committed(): void {
    const { readSkipCount, processSkipCount, writeSkipCount } = this.counts;
    this.skipped += readSkipCount + processSkipCount + writeSkipCount;
    this.saved = this.context;
    this.context = structuredClone(this.saved);
    this.counts = emptyCounts();
    this.rejects = [];
  }

  /** The chunk's rejects and the skips it counted (the chunk in flight, before it rolls back). */
  skips(): SkippedAtEnd {
    const { readSkipCount, processSkipCount, writeSkipCount } = this.counts;
    return { counts: { readSkipCount, processSkipCount, writeSkipCount }, rejects: this.rejects };
  }

  /** The chunk rolled back: back to the saved context. */
  rolledBack(): void {
    this.context = structuredClone(this.saved);
    this.counts = emptyCounts();
    this.rejects = [];
  }
}
