import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { IJobExecution } from '../interfaces/job.interfaces';
import type { IBatchErrorResponse } from '../interfaces/operation.interfaces';
import { BatchServiceError } from './batch-service.error';

/** What an import is (docs/api.md#imports in the service's repository): its parameters and options, as `POST /api/imports` takes them. */
export interface ImportParams {
  target: string;
  mode?: 'insert' | 'upsert';
  conflictKey?: string;
  /** CSV without a header: its columns in file order, comma-separated. */
  columns?: string;
  /** By default from the file's name (`.csv`, `.ndjson`, `.jsonl`, each optionally `.gz`). */
  format?: 'csv' | 'ndjson';
  runId?: string;
  header?: boolean;
  delimiter?: string;
  quote?: string;
  null?: string;
  skipLimit?: number;
  chunkSize?: number;
  /** The body is gzip (by default: a file name ending in `.gz`). */
  gzip?: boolean;
}

export interface ImportTarget {
  /** The service's HTTP address, e.g. http://127.0.0.1:3000 */
  url: string;
  apiKey: string;
}

/**
 * Uploads a data set (a file's path, or a stream) to `POST /api/imports`, streamed, never held in memory; resolves with
 * the execution of the `import` job it launched, once the service has stored the whole body. `onProgress` hears the
 * bytes sent.
 */
export async function importFile(
  service: ImportTarget,
  source: string | Readable,
  params: ImportParams,
  onProgress?: (sent: number, total: number | null) => void,
): Promise<IJobExecution> {
  const name = typeof source === 'string' ? source : '';
  const gzip = params.gzip ?? name.endsWith('.gz');
  const format = params.format ?? (/\.(ndjson|jsonl)(\.gz)?$/.test(name) ? 'ndjson' : 'csv');
  const total = typeof source === 'string' ? statSync(source).size : null;
  const stream = typeof source === 'string' ? createReadStream(source) : source;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...params, format, gzip: undefined }))
    if (value !== undefined) query.set(key, String(value));
  let sent = 0;
  async function* body(): AsyncGenerator<Uint8Array> {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      sent += chunk.length;
      onProgress?.(sent, total);
      yield chunk;
    }
  }
  const response = await fetch(`${service.url.replace(/\/$/, '')}/api/imports?${query}`, {
    method: 'POST',
    headers: {
      'x-api-key': service.apiKey,
      'content-type': format === 'ndjson' ? 'application/x-ndjson' : 'text/csv',
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
    },
    body: body() as unknown as RequestInit['body'],
    duplex: 'half',
  } as RequestInit & { duplex: 'half' });
  return answerOf<IJobExecution>(response);
}

/** A JSON answer of the service, or its error as a BatchServiceError. */
export async function answerOf<T>(response: Response): Promise<T> {
  const text = await response.text();
  const body = (text ? JSON.parse(text) : null) as T | IBatchErrorResponse;
  const error = body as Partial<IBatchErrorResponse> | null;
  if (!response.ok || error?.status === 'error')
    throw new BatchServiceError(error?.code ?? 'INTERNAL', error?.message ?? `HTTP ${response.status}`, error?.details);
  return body as T;
}
