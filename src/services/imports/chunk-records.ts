import { isUtf8 } from 'node:buffer';
import type { TargetColumn } from '../../interfaces/catalog.interfaces';
import type { ImportFile } from './import-files';
import { scanRecords, ScannedRecords } from './record-scanner';
import { ByteWriter } from '../byte-writer';
import { flatRecordInto, ndjsonRecord, RecordKeys, RecordProblem } from './records';

/**
 * A chunk's records as an import finds them in the bytes it read (scanWindow) and hands them to COPY (Records): CSV
 * records as they are, NDJSON records made CSV lines (ndjsonLines); where each came from in the file, for its reject.
 */

/** A reject keeps this much of its record's text. */
const RECORD_TEXT = 1024;

/**
 * Where a record came from in the file: the physical line it starts on (and the one it ends on, where a quoted field
 * holds newlines), its byte offset, and its text as a reject keeps it.
 */
export interface Origin {
  line: number;
  lastLine?: number;
  byteOffset: number;
  text: string;
}

/** A record a chunk refuses, kept until the chunk's end so that its rejects are recorded in file order. */
export interface Refusal {
  error: unknown;
  origin: Origin;
  column: string | null;
  /** Unreadable (malformed JSON, an unknown key), or refused by the target. */
  read: boolean;
}

/** Records of a chunk as COPY takes them: their bytes, where each starts, and where each came from in the file. */
export interface Records {
  data: Buffer;
  /** Where each record starts in `data`, and where the last one ends: one more than the records. */
  bounds: ArrayLike<number>;
  /** The physical line of `data` where each record starts (a quoted newline makes a record two lines). */
  lines: ArrayLike<number>;
  origin(i: number): Origin;
}

/** A window of a file's bytes from some offset, and the records found in it (NDJSON: made CSV lines, when ahead). */
export interface Scan {
  buffer: Buffer;
  records: ScannedRecords;
  /** The records end the file. */
  atEnd: boolean;
  /** Its records as COPY takes them, where they were made while the chunk before loaded (RecordFormat.toCopy). */
  converted?: CopyRuns;
  /** The window starts with a record longer than the limit: `records` is it alone, or none where its end is further. */
  tooLong?: boolean;
}

/** A chunk's records as COPY takes them: in runs of records with the same columns (a COPY names its columns). */
export interface CopyRuns {
  runs: { columns: string[]; records: Records }[];
  /** Records refused before any COPY: an NDJSON record that is no JSON object of the target's columns, say. */
  refused: Refusal[];
}

/** Records converted between two turns of the event loop, so that a chunk's conversion does not hold it up. */
const CONVERTED_PER_TURN = 1000;

/**
 * The `count` NDJSON records scanned in `buffer` (read from `base`), each made a CSV line: written from its bytes where
 * it is flat (flatRecordInto, most records), else by ndjsonRecord from its text (blank lines are no records). Where the
 * chunk's bytes are not all UTF-8, every record is read as text, and one that is not UTF-8 is unreadable.
 */
export async function ndjsonLines(
  buffer: Buffer,
  scanned: ScannedRecords,
  count: number,
  base: number,
  columns: Map<string, TargetColumn>,
): Promise<CopyRuns> {
  const runs = new LineRuns((i) => ({
    line: scanned.lines[i],
    byteOffset: base + scanned.starts[i],
    text: recordText(buffer, scanned.starts[i], endOf(scanned, i)),
  }));
  const utf8 = isUtf8(buffer.subarray(scanned.starts[0] ?? 0, count > 0 ? endOf(scanned, count - 1) : 0));
  const keys: RecordKeys = { names: [], bytes: [] };
  for (let i = 0; i < count; i++) {
    if (i > 0 && i % CONVERTED_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    const [start, end] = [scanned.starts[i], endOf(scanned, i)];
    // a flat record is written straight into the open run, and moved when it starts another
    const out = runs.writer();
    const mark = out.length;
    const names = utf8 ? flatRecordInto(buffer, start, end, columns, out, keys) : null;
    if (names) {
      runs.addWritten(i, names, mark);
      continue;
    }
    let record;
    try {
      // as COPY refuses such bytes in a CSV file: read as text, they would be loaded as U+FFFD
      if (!utf8 && !isUtf8(buffer.subarray(start, end)))
        throw new RecordProblem('22021', 'the record is not UTF-8: it holds an invalid byte sequence');
      const text = buffer.toString('utf8', start, end).trim();
      if (text === '') continue; // a blank line is no record
      record = ndjsonRecord(text, columns);
    } catch (error) {
      if (!(error instanceof RecordProblem)) throw error;
      runs.refuse(i, error);
      continue;
    }
    runs.add(i, record.columns, Buffer.from(record.line));
  }
  return runs.done();
}

/**
 * A chunk's NDJSON records as CSV lines, gathered into runs of records with the same columns: each run one COPY's data,
 * each record in it knowing where it came from (`origin`, by the record's index in the chunk).
 */
class LineRuns {
  private readonly converted: CopyRuns = { runs: [], refused: [] };
  private run: { columns: string[]; out: ByteWriter; bounds: number[]; lines: number[]; origins: number[] } | null =
    null;
  /** Where a record is written while no run is open. */
  private spare = new ByteWriter();

  constructor(private readonly origin: (i: number) => Refusal['origin']) {}

  /** Where the next record's line may be written straight away: the open run's bytes. */
  writer(): ByteWriter {
    return this.run ? this.run.out : this.spare;
  }

  /** Record `i`, written into writer() from `mark` on (one line: a flat record holds no newline but its end). */
  addWritten(i: number, columns: string[], mark: number): void {
    if (!this.run) {
      this.open(columns, this.spare);
      this.spare = new ByteWriter();
    } else if (!sameColumns(this.run.columns, columns)) {
      const out = this.run.out;
      const line = Buffer.from(out.data().subarray(mark));
      out.length = mark;
      this.open(columns).out.bytes(line, 0, line.length);
    }
    this.count(i, 1);
  }

  /** Record `i` as the CSV line `line`. */
  add(i: number, columns: string[], line: Buffer): void {
    if (!this.run || !sameColumns(this.run.columns, columns)) this.open(columns);
    this.run!.out.bytes(line, 0, line.length);
    this.count(i, newlines(line));
  }

  refuse(i: number, error: RecordProblem): void {
    this.converted.refused.push({ error, origin: this.origin(i), column: error.column, read: true });
  }

  done(): CopyRuns {
    this.close();
    return this.converted;
  }

  /** A new run after the open one, its bytes in `out`. */
  private open(columns: string[], out = new ByteWriter()) {
    this.close();
    return (this.run = { columns, out, bounds: [0], lines: [1], origins: [] });
  }

  private count(i: number, newlines: number): void {
    const run = this.run!;
    run.bounds.push(run.out.length);
    run.lines.push(run.lines[run.lines.length - 1] + newlines);
    run.origins.push(i);
  }

  private close(): void {
    if (!this.run) return;
    const { columns, out, bounds, lines, origins } = this.run;
    const origin = this.origin;
    this.converted.runs.push({
      columns,
      records: { data: out.data(), bounds, lines, origin: (k) => origin(origins[k]) },
    });
    this.run = null;
  }
}

/**
 * Up to `max` records found in the bytes read from `offset`, up to the first one longer than `most` bytes (tooLong when
 * it is the first, or when there is none in `most` bytes or more); null when there is none and the file goes on.
 */
export function scanWindow(
  buffer: Buffer,
  file: ImportFile,
  offset: number,
  line: number,
  max: number,
  quote: number | null,
  most: number,
): Scan | null {
  const atEnd = offset + buffer.length >= file.bytes;
  const records = scanRecords(buffer, 0, max, quote, atEnd, line);
  const count = records.starts.length;
  if (count === 0 && !atEnd) return buffer.length >= most ? { buffer, records, atEnd, tooLong: true } : null;
  for (let i = 0; i < count; i++)
    if (endOf(records, i) - records.starts[i] > most)
      return { buffer, records: firstOf(records, Math.max(i, 1)), atEnd: false, tooLong: i === 0 };
  return { buffer, records, atEnd };
}

/** The first `count` records scanned, as though the scan had stopped after them. */
function firstOf(scanned: ScannedRecords, count: number): ScannedRecords {
  if (count === scanned.starts.length) return scanned;
  return {
    starts: scanned.starts.subarray(0, count),
    lines: scanned.lines.subarray(0, count),
    end: scanned.starts[count],
    endLine: scanned.lines[count],
    unterminated: false,
  };
}

/** How many of the scanned records are loaded: all but blank lines at the very end of the file. */
export function recordsKept(buffer: Buffer, scanned: ScannedRecords, atEnd: boolean): number {
  let count = scanned.starts.length;
  if (!atEnd) return count;
  while (
    count > 0 &&
    buffer
      .subarray(scanned.starts[count - 1], endOf(scanned, count - 1))
      .toString()
      .trim() === ''
  )
    count -= 1;
  return count;
}

export function endOf(scanned: ScannedRecords, i: number): number {
  return i + 1 < scanned.starts.length ? scanned.starts[i + 1] : scanned.end;
}

export function csvRecords(buffer: Buffer, scanned: ScannedRecords, count: number, base: number): Records {
  const bounds = new Float64Array(count + 1);
  bounds.set(scanned.starts.subarray(0, count));
  bounds[count] = count < scanned.starts.length ? scanned.starts[count] : scanned.end;
  return {
    data: buffer,
    bounds,
    lines: scanned.lines,
    origin: (i) => ({
      line: scanned.lines[i],
      lastLine: scanned.lines[i] + newlinesWithin(buffer, bounds[i], bounds[i + 1]),
      byteOffset: base + scanned.starts[i],
      text: recordText(buffer, bounds[i], bounds[i + 1]),
    }),
  };
}

/** The newlines inside a record's bytes [start, end): those before the one that ends it. */
export function newlinesWithin(buffer: Buffer, start: number, end: number): number {
  let count = 0;
  for (let at = buffer.indexOf(0x0a, start); at >= 0 && at < end; at = buffer.indexOf(0x0a, at + 1)) count += 1;
  return end > start && buffer[end - 1] === 0x0a ? count - 1 : count;
}

function sameColumns(a: string[], b: string[]): boolean {
  return a === b || (a.length === b.length && a.every((name, i) => name === b[i]));
}

function newlines(bytes: Buffer): number {
  let count = 0;
  for (let at = bytes.indexOf(0x0a); at >= 0; at = bytes.indexOf(0x0a, at + 1)) count += 1;
  return count;
}

/** A record's text for its reject: its first RECORD_TEXT bytes, without its newline. */
export function recordText(buffer: Buffer, start: number, end: number): string {
  return buffer.toString('utf8', start, Math.min(end, start + RECORD_TEXT)).replace(/\r?\n$/, '');
}

/** Refuses record `i` (for `error`, which may name its column): the target would not take it. */
export function refuse(refused: Refusal[], records: Records, i: number, error: unknown): void {
  refused.push({ error, origin: records.origin(i), column: columnOf(error), read: false });
}

/** The record (1-based, of the COPY's data) COPY names in its error's context: `COPY t, line 3, column qty: …`. */
export function copyLineOf(error: unknown): number | null {
  const match = /^COPY [^,]*, line (\d+)/m.exec(String((error as { where?: unknown })?.where ?? ''));
  return match ? Number(match[1]) : null;
}

/** The column a refusal names: COPY's context, the error's column, or the column a record lacks a field for. */
function columnOf(error: unknown): string | null {
  const e = error as { where?: unknown; column?: unknown; message?: unknown } | null;
  const match = /^COPY [^,]*, line \d+, column ([^:]+):/m.exec(String(e?.where ?? ''));
  if (match) return match[1];
  if (typeof e?.column === 'string') return e.column;
  return /^missing data for column "(.+)"$/.exec(String(e?.message ?? ''))?.[1] ?? null;
}

/** The records but the rejected ones (given in order). */
export function without(records: Records, rejected: number[]): Records {
  const count = records.bounds.length - 1;
  const kept = new Float64Array(count - rejected.length);
  let k = 0;
  for (let i = 0, r = 0; i < count; i++) {
    if (i === rejected[r]) r += 1;
    else kept[k++] = i;
  }
  return only(records, kept.subarray(0, k));
}

/** The records at `indexes` (in order), as one COPY's data; each keeps its place in the file. */
export function only(records: Records, indexes: ArrayLike<number>): Records {
  const count = indexes.length;
  const parts: Buffer[] = [];
  const bounds = new Float64Array(count + 1);
  const lines = new Float64Array(count);
  for (let k = 0, from = 0; k < count; k++) {
    const i = indexes[k];
    bounds[k + 1] = bounds[k] + records.bounds[i + 1] - records.bounds[i];
    if (k > 0) lines[k] = lines[k - 1] + records.lines[indexes[k - 1] + 1] - records.lines[indexes[k - 1]];
    // a run of records that follow each other is one part
    if (k + 1 === count || indexes[k + 1] !== i + 1) {
      parts.push(records.data.subarray(records.bounds[indexes[from]], records.bounds[i + 1]));
      from = k + 1;
    }
  }
  return { data: Buffer.concat(parts), bounds, lines, origin: (k) => records.origin(indexes[k]) };
}
