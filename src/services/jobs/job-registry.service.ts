import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { IJobReject } from '../../interfaces/job.interfaces';
import { BatchError } from '../batch-error';
import { quoted } from '../quoted';
import type { ItemListeners, JobDefinition, JobRun, StepRun } from './job-definition';
import type { Ending } from './repository/job-rows';

const BATCH_JOB = 'batch:job';
const JOB_LISTENER = 'batch:job-listener';

/**
 * Marks a provider that defines a job: it has a `definition` (job-definition.ts). Listed in a module's providers, the
 * job is known to every process of the service.
 */
export function BatchJob(): ClassDecorator {
  return (target) => Reflect.defineMetadata(BATCH_JOB, true, target);
}

/** A provider that defines a job. */
export interface JobProvider {
  readonly definition: JobDefinition;
}

type ListenerKind = keyof Listeners;

function listener(kind: ListenerKind) {
  return (job?: string): MethodDecorator =>
    (_target, _key, descriptor) => {
      const listeners = (Reflect.getMetadata(JOB_LISTENER, descriptor.value as object) ?? []) as { kind: string }[];
      Reflect.defineMetadata(JOB_LISTENER, [...listeners, { kind, job }], descriptor.value as object);
    };
}

/**
 * Listeners of jobs (of the job named, or of all), Spring Batch's: methods of any provider marked with these are
 * called as executions, steps and chunks go. They are called after the fact and cannot change it; one that throws is
 * logged.
 * - `@BeforeJob()` (run: JobRun), when an execution starts; `@AfterJob()` (run: JobRun, ending: Ending), when it ends;
 * - `@BeforeStep()` (step: StepRun), `@AfterStep()` (step: StepRun, ending: Ending), around each step or partition;
 * - `@AfterChunk()` (step: StepRun), after each committed chunk, `step.counts` being the chunk's;
 * - `@OnSkip()` (step: StepRun, reject: IJobReject), for each item skipped, once its chunk committed;
 * - `@OnLeaseLost()` (job: string), for each execution or partition whose worker stopped renewing its lease, once
 *   another worker ended or freed it.
 * A chunk step (toolkit/chunk-step.ts) tells these too, as its chunk goes, before the chunk commits or rolls back:
 * - `@BeforeChunk()` (step: StepRun), as each chunk (or each attempt of one) begins, before its items are read;
 * - `@AfterRead()` (step, item), for each item read (a reader reads a chunk's items at once: no before-read);
 * - `@BeforeProcess()` (step, item) and `@AfterProcess()` (step, item, result: null where filtered), around each
 *   processing that returns, in a step with a processor (with `concurrency`, in the order the processings go);
 * - `@BeforeWrite()` (step, items) and `@AfterWrite()` (step, items written), around each write: the chunk's, then
 *   each item's alone where the chunk's failed;
 * - `@OnReadError()` (step, error), `@OnProcessError()` (step, item, error), `@OnWriteError()` (step, items, error:
 *   the chunk's, then each item's that fails alone), for each failure, retried or skipped or not;
 * - `@AfterChunkError()` (step, error), when a chunk fails (to be tried again, or failing the step).
 */
export const BeforeJob = listener('beforeJob');
export const AfterJob = listener('afterJob');
export const BeforeStep = listener('beforeStep');
export const AfterStep = listener('afterStep');
export const AfterChunk = listener('afterChunk');
export const OnSkip = listener('onSkip');
export const OnLeaseLost = listener('onLeaseLost');
export const BeforeChunk = listener('beforeChunk');
export const AfterRead = listener('afterRead');
export const OnReadError = listener('onReadError');
export const BeforeProcess = listener('beforeProcess');
export const AfterProcess = listener('afterProcess');
export const OnProcessError = listener('onProcessError');
export const BeforeWrite = listener('beforeWrite');
export const AfterWrite = listener('afterWrite');
export const OnWriteError = listener('onWriteError');
export const AfterChunkError = listener('afterChunkError');

interface Listeners extends ItemListenerLists {
  beforeJob: ((run: JobRun) => unknown)[];
  afterJob: ((run: JobRun, ending: Ending) => unknown)[];
  beforeStep: ((step: StepRun) => unknown)[];
  afterStep: ((step: StepRun, ending: Ending) => unknown)[];
  afterChunk: ((step: StepRun) => unknown)[];
  onSkip: ((step: StepRun, reject: IJobReject) => unknown)[];
  onLeaseLost: ((job: string) => unknown)[];
}

/** Each item listener, a list of them. */
type ItemListenerLists = { [K in keyof ItemListeners]: ItemListeners[K][] };

/** The jobs and job listeners of the application, found among its providers at start. */
@Injectable()
export class JobRegistry implements OnModuleInit {
  private readonly logger = new Logger(JobRegistry.name);
  private readonly jobs = new Map<string, JobDefinition>();
  private readonly listeners = new Map<string, Listeners>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance = wrapper.instance as Record<string, unknown> | undefined;
      if (!instance || typeof instance !== 'object') continue;
      if (wrapper.metatype && Reflect.getMetadata(BATCH_JOB, wrapper.metatype)) {
        const { definition } = instance as unknown as JobProvider;
        if (this.jobs.has(definition.name)) throw new Error(`job ${definition.name} is defined twice`);
        this.jobs.set(definition.name, definition);
      }
      const prototype = Object.getPrototypeOf(instance) as object;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const handler = instance[method];
        if (typeof handler !== 'function') continue;
        const marks = Reflect.getMetadata(JOB_LISTENER, handler) as { kind: ListenerKind; job?: string }[] | undefined;
        for (const { kind, job } of marks ?? [])
          (this.listenersOf(job ?? '*')[kind] as unknown[]).push((handler as () => unknown).bind(instance));
      }
    }
  }

  get(name: string): JobDefinition | undefined {
    return this.jobs.get(name);
  }

  /** The job of that name, as a launch or a schedule names it; NOT_FOUND saying which jobs there are. */
  named(name: unknown): JobDefinition {
    const definition = typeof name === 'string' ? this.jobs.get(name) : undefined;
    if (definition) return definition;
    const names = this.all().map((job) => job.name);
    throw new BatchError(
      'NOT_FOUND',
      `No job named ${quoted(String(name), 100)}: the jobs are ${names.join(', ')} ` +
        '(GET /api/jobs, or listJobs over RPC, describes each with its parameters)',
    );
  }

  all(): JobDefinition[] {
    return [...this.jobs.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Calls the listeners of `kind` of this job and of all jobs. */
  notify<K extends ListenerKind>(job: string, kind: K, ...args: Parameters<Listeners[K][number]>): void {
    // called for each item by the item listeners: nothing made where no listener listens
    this.call(this.listeners.get('*')?.[kind], kind, args);
    this.call(this.listeners.get(job)?.[kind], kind, args);
  }

  private call(handlers: Listeners[ListenerKind] | undefined, kind: string, args: unknown[]): void {
    for (const handler of handlers ?? []) {
      try {
        const result = (handler as (...a: unknown[]) => unknown)(...args);
        if (result instanceof Promise) result.catch((error: unknown) => this.failed(kind, error));
      } catch (error) {
        this.failed(kind, error);
      }
    }
  }

  private failed(kind: string, error: unknown): void {
    this.logger.warn(`a ${kind} listener failed: ${(error as Error)?.message ?? String(error)}`);
  }

  private listenersOf(job: string): Listeners {
    let listeners = this.listeners.get(job);
    if (!listeners) {
      listeners = {
        beforeJob: [],
        afterJob: [],
        beforeStep: [],
        afterStep: [],
        afterChunk: [],
        onSkip: [],
        onLeaseLost: [],
        beforeChunk: [],
        afterRead: [],
        onReadError: [],
        beforeProcess: [],
        afterProcess: [],
        onProcessError: [],
        beforeWrite: [],
        afterWrite: [],
        onWriteError: [],
        afterChunkError: [],
      };
      this.listeners.set(job, listeners);
    }
    return listeners;
  }
}
