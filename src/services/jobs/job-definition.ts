import type { PoolClient } from 'pg';
import type { StepCounts } from '../step-counts';
import type {
  IJobDefinition,
  JobGrants,
  IJobParameterDescription,
  IJobReject,
  JobParameters,
  JobParameterType,
  JobParameterValue,
} from '../../interfaces/job.interfaces';
import type { RetryPolicy } from './toolkit/retry';

/**
 * How a job is defined (docs/jobs.md, after Spring Batch): a name, typed parameters (identifying) and options
 * (not), steps run in order unless a step's exit code routes elsewhere, a start limit. A step is a tasklet run again
 * and again, each run one transaction that also saves the step's position and counters, until it says FINISHED; a
 * chunk-oriented step (reader → processor → writer) and a partitioned step are built on that. Written with `job()`:
 *
 *     job('nightly-totals')
 *       .describe('Sums the day into totals')
 *       .parameter('day', { type: 'string', required: true, description: 'YYYY-MM-DD' })
 *       .step('sum', tasklet(async (tx, step) => { await tx.query('…'); return 'FINISHED'; }))
 *       .build();
 */

export interface ParameterSpec {
  type: JobParameterType;
  description: string;
  required?: boolean;
  default?: JobParameterValue;
  /** The values a string may take. */
  values?: readonly string[];
  /** Bounds of an integer or number. */
  min?: number;
  max?: number;
}

/** A job's execution as its steps see it. */
export interface JobRun {
  /** The execution's id. */
  readonly id: string;
  /** Its job instance's: the same for every execution of a restarted instance. */
  readonly instanceId: string;
  readonly job: string;
  readonly clientId: string;
  readonly parameters: JobParameters;
  readonly options: JobParameters;
}

/**
 * A step's execution (a partition's, in a partitioned step) as its work sees it: Spring Batch's StepContribution and
 * ExecutionContext. `context` is saved with each committed chunk, and is what a restart or another worker resumes
 * from; `counts` are this chunk's, added to the step's on commit.
 */
export interface StepRun {
  readonly job: JobRun;
  readonly name: string;
  /** The partition's name, in a partitioned step. */
  readonly partition: string | null;
  readonly context: Record<string, unknown>;
  readonly counts: StepCounts;
  /** Items the step skipped in the chunks committed before this one (this execution's). */
  readonly skippedBefore: number;
  /** A code of the step's own to route on (`on(code)`); by default COMPLETED (or COMPLETED_WITH_SKIPS). */
  exitCode: string | null;
  /** Records an item the step skipped; committed with the chunk. */
  reject(reject: IJobReject): void;
  /** The items the chunk in flight skipped so far. */
  readonly rejects: readonly IJobReject[];
  /** How far the step is: `done` of `total` (null when unknown) in `unit`s. */
  progress(done: number, total: number | null, unit?: string): void;
  /** Tells the job's chunk and item listeners (`@BeforeChunk()`, `@OnReadError()`, …); the chunk step does. */
  notify<K extends keyof ItemListeners>(kind: K, ...args: Parameters<ItemListeners[K]>): void;
}

/** The listeners a chunk step tells, in its chunk's course (job-registry.service.ts has their decorators). */
export interface ItemListeners {
  beforeChunk: (step: StepRun) => unknown;
  afterRead: (step: StepRun, item: unknown) => unknown;
  onReadError: (step: StepRun, error: unknown) => unknown;
  beforeProcess: (step: StepRun, item: unknown) => unknown;
  afterProcess: (step: StepRun, item: unknown, result: unknown) => unknown;
  onProcessError: (step: StepRun, item: unknown, error: unknown) => unknown;
  beforeWrite: (step: StepRun, items: unknown[]) => unknown;
  afterWrite: (step: StepRun, items: unknown[]) => unknown;
  onWriteError: (step: StepRun, items: unknown[], error: unknown) => unknown;
  afterChunkError: (step: StepRun, error: unknown) => unknown;
}

export type RepeatStatus = 'CONTINUABLE' | 'FINISHED';

/** One chunk of a step's work, in the transaction that saves its position. */
export type Tasklet = (tx: PoolClient, step: StepRun) => Promise<RepeatStatus>;

export interface TaskletStep {
  kind: 'tasklet';
  /** Called each time the step (or partition) starts or resumes, outside any chunk: totals, resolved bounds. */
  open?: (step: StepRun) => Promise<void>;
  execute: Tasklet;
}

/**
 * One partition of a partitioned step: its name, the context it starts with (its bounds), and its size where it is
 * known at once: the step's progress then has its total before every partition began.
 */
export interface Partition {
  name: string;
  context: Record<string, unknown>;
  size?: { total: number; unit: string };
}

/**
 * A step whose input is split into partitions (a key range, say), each run as `step` by whichever worker claims it;
 * the step ends when every partition has.
 */
export interface PartitionedStep {
  kind: 'partitioned';
  partitions: (job: JobRun) => Promise<Partition[]>;
  step: TaskletStep;
}

export type StepDefinition = TaskletStep | PartitionedStep;

/** Where a step's exit code leads: another step, or the job's end (completed, or failed). */
export type Transition = { to: string } | { end: true } | { fail: true };

export interface JobStep {
  name: string;
  definition: StepDefinition;
  /** Exit code (or `*`) → where it leads; otherwise the next step when it completed, the job's end when not. */
  transitions: Map<string, Transition>;
}

export interface JobDefinition {
  name: string;
  description: string;
  parameters: Map<string, ParameterSpec>;
  options: Map<string, ParameterSpec>;
  steps: JobStep[];
  startLimit: number;
  restartable: boolean;
  /**
   * How a user of this job lets more items be skipped than `limit`, for the description of an execution that went past
   * it: a clause (`launch it again with …`).
   */
  skipAdvice: (limit: number) => string;
  /** The grants a launch with these parameters needs (tables as `schema.table`). */
  grants: (parameters: JobParameters) => Promise<JobGrants>;
  /**
   * Checks at launch that go beyond types (tables, columns, what the launching client stored): throws the contract's
   * error (UNKNOWN_TARGET, UNKNOWN_COLUMN, VALIDATION_FAILED) before anything runs.
   */
  validate: (parameters: JobParameters, options: JobParameters, clientId: string) => Promise<void>;
  /**
   * The parameters (with their defaults) as what they mean, for the instance's identity: tables by their catalog
   * name, key bounds as the key's values, defaults that depend on the tables filled in. Two spellings of one launch
   * are then one instance.
   */
  identify: (parameters: JobParameters) => Promise<JobParameters>;
}

/** The identifying parameter every job takes: any text, to run an instance that completed once more. */
export const RUN_ID: ParameterSpec = {
  type: 'string',
  description: 'any text: the same other parameters with another runId are another instance, run again',
};

/** The default start limit: starts per instance, the first included. */
export const DEFAULT_START_LIMIT = 3;

export function tasklet(execute: Tasklet, open?: TaskletStep['open']): TaskletStep {
  return { kind: 'tasklet', execute, open };
}

export function partitioned(partitions: PartitionedStep['partitions'], step: TaskletStep): PartitionedStep {
  return { kind: 'partitioned', partitions, step };
}

/** Reads the next items of a step, advancing the position kept in `step.context`; none left: an empty list. */
export type ItemReader<T> = (tx: PoolClient, step: StepRun, count: number) => Promise<T[]>;
/** An item as it is to be written, or null to filter it out; throwing skips it (a process skip). */
export type ItemProcessor<T, U> = (item: T, step: StepRun) => Promise<U | null> | U | null;
/**
 * Writes a chunk's items; when it throws, each item is written alone to find the ones to skip. A writer that finds
 * them itself returns them: those items were not written, the others were.
 */
export type ItemWriter<U> = (tx: PoolClient, items: U[], step: StepRun) => Promise<void | WriteRefusal[]>;

/** An item a writer did not write: its place among the items it was given, and why. */
export interface WriteRefusal {
  index: number;
  error: unknown;
}

export interface ChunkOrientedStep<T, U> {
  reader: ItemReader<T>;
  processor?: ItemProcessor<T, U>;
  writer: ItemWriter<U>;
  /** Items per chunk; the `chunkSize` option overrides it. */
  chunkSize: number;
  open?: TaskletStep['open'];
  /** How an item is shown in a reject. */
  describe?: (item: T) => string;
  /** Errors tried again before they skip (toolkit/retry.ts). */
  retry?: RetryPolicy;
  /** Items of a chunk processed at once (default 1); they are written in the order read. */
  concurrency?: number;
}

/** Runs `work` under a savepoint: true when it succeeded, false (rolled back to the savepoint) when it threw. */
export async function underSavepoint(
  tx: PoolClient,
  work: () => Promise<unknown>,
  failed: (error: unknown) => void = () => undefined,
): Promise<boolean> {
  await tx.query('SAVEPOINT item');
  try {
    await work();
    await tx.query('RELEASE SAVEPOINT item');
    return true;
  } catch (error) {
    await tx.query('ROLLBACK TO SAVEPOINT item; RELEASE SAVEPOINT item');
    failed(error);
    return false;
  }
}

/** Starts a job definition (see the comment at the top of this file). */
export function job(name: string): JobBuilder {
  return new JobBuilder(name);
}

export class JobBuilder {
  private readonly definition: JobDefinition;

  constructor(name: string) {
    this.definition = {
      name,
      description: '',
      parameters: new Map(),
      options: new Map(),
      steps: [],
      startLimit: DEFAULT_START_LIMIT,
      restartable: true,
      skipAdvice: (limit) =>
        `launch it again with the same parameters (POST /api/jobs/${name}/executions) and the option skipLimit above ${limit}`,
      grants: async () => ({ reads: [], writes: [] }),
      validate: async () => undefined,
      identify: async (parameters) => parameters,
    };
  }

  describe(description: string): this {
    this.definition.description = description;
    return this;
  }

  /** An identifying parameter: launches with other values are other instances. */
  parameter(name: string, spec: ParameterSpec): this {
    this.definition.parameters.set(name, spec);
    return this;
  }

  /** An option (chunkSize, skipLimit, …): a restart may change it; it does not identify the instance. */
  option(name: string, spec: ParameterSpec): this {
    this.definition.options.set(name, spec);
    return this;
  }

  startLimit(limit: number): this {
    this.definition.startLimit = limit;
    return this;
  }

  /** An execution that failed or stopped is never started again: its instance is done. */
  preventRestart(): this {
    this.definition.restartable = false;
    return this;
  }

  /** How a user of this job lets more items be skipped (JobDefinition.skipAdvice). */
  skipAdvice(advice: JobDefinition['skipAdvice']): this {
    this.definition.skipAdvice = advice;
    return this;
  }

  grants(grants: JobDefinition['grants']): this {
    this.definition.grants = grants;
    return this;
  }

  validate(validate: JobDefinition['validate']): this {
    this.definition.validate = validate;
    return this;
  }

  identify(identify: JobDefinition['identify']): this {
    this.definition.identify = identify;
    return this;
  }

  step(name: string, definition: StepDefinition): this {
    if (this.definition.steps.some((step) => step.name === name)) throw new Error(`step ${name} defined twice`);
    this.definition.steps.push({ name, definition, transitions: new Map() });
    return this;
  }

  /** Where the last step leads when it exits with `code` (`*`: any other code). */
  on(code: string): { to: (step: string) => JobBuilder; end: () => JobBuilder; fail: () => JobBuilder } {
    const last = this.definition.steps.at(-1);
    if (!last) throw new Error('on() needs a step before it');
    const route = (transition: Transition) => (last.transitions.set(code, transition), this);
    return { to: (step) => route({ to: step }), end: () => route({ end: true }), fail: () => route({ fail: true }) };
  }

  build(): JobDefinition {
    if (!this.definition.parameters.has('runId')) this.definition.parameters.set('runId', RUN_ID);
    const names = new Set(this.definition.steps.map((step) => step.name));
    if (names.size === 0) throw new Error(`job ${this.definition.name} has no step`);
    for (const step of this.definition.steps)
      for (const transition of step.transitions.values())
        if ('to' in transition && !names.has(transition.to))
          throw new Error(`job ${this.definition.name}: step ${step.name} leads to no step ${transition.to}`);
    return this.definition;
  }
}

/** Where a step that exited with `code` leads (see JobStep.transitions). */
export function nextStep(definition: JobDefinition, step: JobStep, code: string, status: string): Transition {
  const routed = step.transitions.get(code) ?? step.transitions.get('*');
  if (routed) return routed;
  if (status !== 'COMPLETED') return { fail: true };
  const following = definition.steps[definition.steps.indexOf(step) + 1];
  return following ? { to: following.name } : { end: true };
}

/** A definition as GET /api/jobs lists it. */
export function describeJob(definition: JobDefinition): IJobDefinition {
  const list = (specs: Map<string, ParameterSpec>): IJobParameterDescription[] =>
    [...specs].map(([name, spec]) => ({
      name,
      type: spec.type,
      required: spec.required ?? false,
      default: spec.default,
      description: spec.values ? `${spec.description} (${spec.values.join(' | ')})` : spec.description,
    }));
  return {
    name: definition.name,
    description: definition.description,
    steps: definition.steps.map((step) => step.name),
    parameters: list(definition.parameters),
    options: list(definition.options),
    startLimit: definition.startLimit,
    restartable: definition.restartable,
  };
}
