import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';

/** What threadProcessor starts a thread with: the module and the export that processes an item. */
export interface ProcessorThreadData {
  module: string;
  name: string;
}

/** A task, and its answer: the output, or the error (its name, message and code: what a reject records). */
export interface ProcessorTask {
  id: number;
  item: unknown;
}
export type ProcessorAnswer =
  { id: number; output: unknown } | { id: number; error: { name: string; message: string; code?: unknown } };

/** One thread of a threadProcessor's pool: loads the processor once, then processes the items it is sent. */
async function serve(): Promise<void> {
  const { module, name } = workerData as ProcessorThreadData;
  const loaded = (await import(pathToFileURL(module).href)) as Record<string, unknown>;
  const process = loaded[name] as (item: unknown) => unknown;
  if (typeof process !== 'function') throw new Error(`${module} exports no function ${name}`);
  parentPort!.on('message', ({ id, item }: ProcessorTask) => {
    Promise.resolve()
      .then(() => process(item))
      .then(
        (output) => parentPort!.postMessage({ id, output } satisfies ProcessorAnswer),
        (error: { name?: unknown; message?: unknown; code?: unknown }) =>
          parentPort!.postMessage({
            id,
            error: {
              name: String(error?.name ?? 'Error'),
              message: String(error?.message ?? error),
              code: error?.code,
            },
          } satisfies ProcessorAnswer),
      );
  });
}

void serve();
