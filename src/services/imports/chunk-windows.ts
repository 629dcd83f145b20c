import type { PoolClient } from 'pg';
import type { Database } from '../storage/database';
import { recordsKept, Scan, scanWindow } from './chunk-records';
import type { ImportFile, ImportFiles } from './import-files';
import type { ImportPlan } from './import-plan';
import { recordEndIn } from './record-scanner';

/**
 * Bytes read for a chunk: as many as its records took last time (a little more), else the last window (grown to WINDOW
 * where it was less); doubled while they hold no record, up to the longest record taken (BATCH_IMPORT_MAX_RECORD_BYTES).
 * The first chunks read less, four times more each: nothing overlaps the first one's reading and converting (the next
 * chunk is read and converted while a chunk's COPY runs), and its code runs before V8 compiled it.
 */
export const FIRST_WINDOW = 256 << 10;
const WINDOW = 4 << 20;
export const SMALL_WINDOW = 64 << 10;

/** The window the next chunk reads first, after one whose records took `used` bytes of a window of `window`. */
export function nextWindow(full: boolean, used: number, window: number): number {
  return full ? Math.max(SMALL_WINDOW, Math.ceil(used * 1.05)) : Math.max(window, Math.min(window * 4, WINDOW));
}

/**
 * The windows of stored data sets a worker's imports read their chunks from: each chunk's records found by a
 * quote-aware scan (scanWindow), and the next chunk read, scanned and made ready for COPY on another connection while
 * this one's COPY runs (so that the database and the service work on both at once).
 */
export class ChunkWindows {
  /** The next chunk of each file being loaded, by where it starts and how many bytes it read. */
  private readonly ahead = new Map<string, { offset: number; window: number; scan: Promise<Scan | null> }>();

  constructor(
    private readonly files: ImportFiles,
    private readonly db: Database,
    /** The longest record loaded; a longer one is a reject, read past a window at a time. */
    readonly maxRecordBytes: number,
  ) {}

  /** Up to `max` records from `offset`: the bytes read (from `offset`) and where the records are in them. */
  async scan(
    tx: PoolClient,
    file: ImportFile,
    offset: number,
    line: number,
    max: number,
    quote: number | null,
    first: number,
  ): Promise<Scan> {
    const ahead = this.ahead.get(file.id);
    this.ahead.delete(file.id);
    const scanned = ahead && ahead.offset === offset && ahead.window === first ? await ahead.scan : null;
    if (scanned) return scanned;
    const most = this.maxRecordBytes;
    for (let window = first; ; window = Math.min(window * 2, most)) {
      const buffer = await this.files.read(tx, file.id, offset, window);
      const found = scanWindow(buffer, file, offset, line, max, quote, most);
      if (found) return found;
    }
  }

  /**
   * Reads and scans the next chunk ahead, on a connection of the pool, and makes its records ready for COPY (failed,
   * it is read again in its chunk); `columns` are the header's, where the format reads one.
   */
  readAhead(
    plan: ImportPlan,
    file: ImportFile,
    at: { offset: number; line: number; window: number },
    max: number,
    columns: string[] | undefined,
  ): void {
    const { offset, line, window } = at;
    const scan = this.files
      .read(this.db.pool, file.id, offset, window)
      .then(async (buffer) => {
        const found = scanWindow(buffer, file, offset, line, max, plan.format.quote(plan), this.maxRecordBytes);
        if (found && !found.tooLong) {
          const count = recordsKept(found.buffer, found.records, found.atEnd);
          found.converted = await plan.format.toCopy(found, count, offset, plan, columns);
        }
        return found;
      })
      .catch(() => null);
    this.ahead.set(file.id, { offset, window, scan });
  }

  /**
   * Where a record longer than maxRecordBytes that starts at `offset` ends (a scan found it too long), and its last
   * line, found by reading on a window at a time where the scan's window did not hold it: the record is never held
   * whole.
   */
  async endOfLongRecord(
    tx: PoolClient,
    file: ImportFile,
    offset: number,
    line: number,
    quote: number | null,
    scan: Scan,
  ): Promise<{ end: number; endLine: number; lastLine: number }> {
    const { buffer, records } = scan;
    if (records.starts.length > 0) {
      const ended = buffer[records.end - 1] === 0x0a; // else at the end of the file
      return { end: offset + records.end, endLine: records.endLine, lastLine: records.endLine - (ended ? 1 : 0) };
    }
    const cursor = { quoted: false, newlines: 0 };
    let end = offset;
    for (let piece = buffer; ; piece = await this.files.read(tx, file.id, end, WINDOW)) {
      const found = recordEndIn(piece, quote, cursor);
      end += found < 0 ? piece.length : found;
      if (found >= 0 || end >= file.bytes || piece.length === 0)
        return { end, endLine: line + cursor.newlines + (found < 0 ? 0 : 1), lastLine: line + cursor.newlines };
    }
  }
}
