import type { PoolClient } from 'pg';
import { skip, type ItemReader, type StepRun } from '../jobs';
import type { ImportFiles } from './import-files';
import { scanRecords } from './record-scanner';
import { csvFields } from './records';

export interface DatasetReaderOptions {
  /** The stored data sets: the job injects ImportFiles and passes it. */
  files: ImportFiles;
  /** The data set's sha256, one the launching client uploaded (default: the job's `sha256` parameter). */
  sha256?: (step: StepRun) => string;
  format: 'csv' | 'ndjson';
  /** CSV: whether the first record names the columns (default true); else `columns` name them. */
  header?: boolean;
  columns?: string[];
  delimiter?: string;
  quote?: string;
  /** A record longer than this fails the step (default 16 MiB). */
  maxRecordBytes?: number;
}

/** Where the reader is in the data set, saved with each chunk. */
interface DatasetPosition {
  fileId: string;
  bytes: number;
  offset: number;
  line: number;
  columns: string[] | null;
}

/** What a chunk reads at once, grown while one record needs more. */
const WINDOW_BYTES = 1 << 20;

/**
 * The records of a data set uploaded by `POST /api/imports` (stored in batch.import_files), as items, for a job that
 * transforms a file before it writes it: found as the import finds them (quote-aware: a quoted newline belongs to its
 * field), a CSV record an object of its header's (or `columns`') names to its fields' text, an NDJSON record its
 * parsed object (blank lines are none). A record that does not parse (malformed JSON, more fields than columns) is a
 * read skip, its line and byte offset in the reject. The byte offset and line are saved in `step.context.dataset`, so
 * a restart reads on after the last committed chunk.
 */
export function datasetReader<T = Record<string, unknown>>(options: DatasetReaderOptions): ItemReader<T> {
  const quote = options.format === 'csv' ? (options.quote ?? '"') : null;
  const delimiter = options.delimiter ?? ',';
  const maxRecord = options.maxRecordBytes ?? 16 << 20;
  return async (tx, step, count) => {
    const position = (step.context.dataset as DatasetPosition | undefined) ?? (await start(tx, step, options));
    const items: T[] = [];
    let window = WINDOW_BYTES;
    while (items.length < count && position.offset < position.bytes) {
      const data = await options.files.read(tx, position.fileId, position.offset, window);
      const atEnd = position.offset + data.length >= position.bytes;
      const scan = scanRecords(data, 0, count - items.length, quote?.charCodeAt(0) ?? null, atEnd, position.line);
      if (scan.starts.length === 0) {
        if (window >= maxRecord) throw new Error(`a record at line ${position.line} is longer than ${maxRecord} bytes`);
        window = Math.min(window * 2, maxRecord);
        continue;
      }
      for (let i = 0; i < scan.starts.length; i++) {
        const end = i + 1 < scan.starts.length ? scan.starts[i + 1] : scan.end;
        const text = data.toString('utf8', scan.starts[i], end).replace(/\r?\n$/, '');
        const at = { line: scan.lines[i], byteOffset: position.offset + scan.starts[i] };
        if (position.columns === null && options.format === 'csv') {
          position.columns = csvFields(text, delimiter, quote!);
          continue;
        }
        if (text.trim() === '') continue;
        try {
          items.push(
            options.format === 'csv'
              ? csvItem<T>(csvFields(text, delimiter, quote!), position.columns!)
              : ndjson<T>(text),
          );
        } catch (error) {
          skip(step, error, text.slice(0, 1024), at, 'read');
        }
      }
      position.offset += scan.end;
      position.line = scan.endLine;
    }
    step.context.dataset = position;
    step.progress(position.offset, position.bytes, 'bytes');
    return items;
  };
}

async function start(tx: PoolClient, step: StepRun, options: DatasetReaderOptions): Promise<DatasetPosition> {
  const sha256 = options.sha256?.(step) ?? String(step.job.parameters.sha256);
  const { rows } = await tx.query<{ id: string; bytes: string }>(
    `SELECT id, bytes FROM batch.import_files WHERE client_id = $1 AND sha256 = $2`,
    [step.job.clientId, sha256],
  );
  if (rows.length === 0) throw new Error(`no data set ${sha256} of this client`);
  const header = options.format === 'csv' && (options.header ?? true);
  const columns = header ? null : (options.columns ?? null);
  if (options.format === 'csv' && !header && !columns) throw new Error('a CSV data set without a header needs columns');
  return { fileId: rows[0].id, bytes: Number(rows[0].bytes), offset: 0, line: 1, columns };
}

function csvItem<T>(fields: string[], columns: string[]): T {
  if (fields.length > columns.length)
    throw Object.assign(new Error(`${fields.length} fields, ${columns.length} columns`), { code: '22P04' });
  return Object.fromEntries(columns.map((column, i) => [column, fields[i] ?? null])) as T;
}

function ndjson<T>(text: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw Object.assign(new Error((error as Error).message), { code: 'MALFORMED_JSON' });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw Object.assign(new Error('an NDJSON record must be an object'), { code: 'MALFORMED_JSON' });
  return value as T;
}
