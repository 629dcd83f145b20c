import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ItemProcessor } from '../job-definition';
import type { ProcessorAnswer, ProcessorThreadData } from './processor-thread';

export interface ThreadProcessorOptions {
  /** The compiled module (an absolute path: `join(__dirname, 'score.js')`) whose export processes an item. */
  module: string;
  /** The export: a function (item) → output, or null to filter the item out (default `process`). */
  export?: string;
  /** Threads in the pool. */
  threads: number;
  /** A pool given no item for this long ends its threads; the next item starts them again (default 30 s). */
  idleMs?: number;
}

/** An error a thread's processor threw, as it was: its name, message and code (a reject's code). */
export class ThreadProcessorError extends Error {
  constructor(
    readonly originalName: string,
    message: string,
    readonly code: unknown,
  ) {
    super(message);
  }
}

/**
 * A CPU-bound processor run in a pool of worker threads, so that it works beside the event loop (a worker's leases,
 * other steps) and on several cores: the item is sent to a free thread (structured-cloned: plain data only, no
 * `step`), processed by the module's export, and the output sent back. Used with the chunk step's `concurrency` set to
 * `threads`, so that every thread has an item; the chunk is written in the order read as ever.
 */
export function threadProcessor<T, U>(options: ThreadProcessorOptions): ItemProcessor<T, U> {
  const pool = new ThreadPool(
    { module: options.module, name: options.export ?? 'process' },
    options.threads,
    options.idleMs ?? 30_000,
  );
  return (item: T) => pool.run(item) as Promise<U | null>;
}

interface Task {
  item: unknown;
  resolve: (output: unknown) => void;
  reject: (error: Error) => void;
}

/** A thread, and the task it works on (one at a time). */
interface Thread {
  worker: Worker;
  task: Task | null;
}

class ThreadPool {
  private threads: Thread[] = [];
  private readonly waiting: Task[] = [];
  private idle: NodeJS.Timeout | null = null;

  constructor(
    private readonly data: ProcessorThreadData,
    private readonly size: number,
    private readonly idleMs: number,
  ) {}

  run(item: unknown): Promise<unknown> {
    if (this.idle) clearTimeout(this.idle);
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      let thread = this.threads.find((t) => t.task === null);
      if (!thread && this.threads.length < this.size) thread = this.start();
      if (!thread) return;
      thread.task = this.waiting.shift()!;
      thread.worker.postMessage({ id: 0, item: thread.task.item });
    }
    if (this.idle) clearTimeout(this.idle);
    if (this.threads.every((t) => t.task === null)) this.idle = setTimeout(() => this.end(), this.idleMs).unref();
  }

  private start(): Thread {
    const worker = new Worker(join(__dirname, 'processor-thread.js'), { workerData: this.data });
    worker.unref();
    const thread: Thread = { worker, task: null };
    worker.on('message', (answer: ProcessorAnswer) => {
      const task = thread.task!;
      thread.task = null;
      if ('error' in answer)
        task.reject(new ThreadProcessorError(answer.error.name, answer.error.message, answer.error.code));
      else task.resolve(answer.output);
      this.dispatch();
    });
    // a thread that dies (its module failed to load, it ran out of memory) fails its item; the next starts another
    worker.on('error', (error) => this.lost(thread, error));
    worker.on('exit', (code) => this.lost(thread, new Error(`a processor thread exited with ${code}`)));
    this.threads.push(thread);
    return thread;
  }

  private lost(thread: Thread, error: Error): void {
    if (!this.threads.includes(thread)) return;
    this.threads = this.threads.filter((t) => t !== thread);
    thread.task?.reject(error);
    thread.task = null;
    this.dispatch();
  }

  /** Ends the threads of a pool left idle (they are started again when an item comes). */
  private end(): void {
    if (this.waiting.length > 0 || this.threads.some((t) => t.task !== null)) return;
    const threads = this.threads;
    this.threads = [];
    for (const { worker } of threads) void worker.terminate();
  }
}
