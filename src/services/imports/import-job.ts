import { Injectable } from '@nestjs/common';
import { isUtf8 } from 'node:buffer';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { TargetColumn, TargetTable } from '../../interfaces/catalog.interfaces';
import type { JobParameters } from '../../interfaces/job.interfaces';
import { BatchError, invalidField } from '../batch-error';
import { job, JobDefinition, JobRun, skip, StepRun, tasklet, underSavepoint } from '../jobs/job-definition';
import { namesOf } from '../jobs/job-parameters';
import { BatchJob, JobProvider } from '../jobs/job-registry.service';
import { CONFLICT_KEY, conflictKeyOf, MODE } from '../jobs/write-mode';
import { CatalogService } from '../storage/catalog.service';
import { Database, quoteIdent } from '../storage/database';
import { isConcurrencyConflict, isConnectionError } from '../storage/database-error';
import { ImportFile, ImportFiles } from './import-files';
import { scanRecords, ScannedRecords } from './record-scanner';
import { doubtfulRecords, recordShape } from './doubtful-records';
import { ByteWriter, csvFields, flatRecordInto, ndjsonRecord, RecordKeys, RecordProblem } from './records';

/**
 * Bytes read for a chunk: as many as its records took last time (a little more), else the last window (grown to WINDOW
 * where it was less); doubled while they hold no record. The first chunks read less, four times more each: nothing
 * overlaps the first one's reading and converting (the next chunk is read and converted while a chunk's COPY runs),
 * and its code runs before V8 compiled it.
 */
const FIRST_WINDOW = 256 << 10;
const WINDOW = 4 << 20;
const SMALL_WINDOW = 64 << 10;
const MOST_WINDOW = 1 << 30;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
/** A reject keeps this much of its record's text. */
const RECORD_TEXT = 1024;

/** What an import runs with: its target, how the data set is written, and how COPY reads it. */
export interface ImportPlan {
  target: TargetTable;
  format: 'csv' | 'ndjson';
  conflictKey: string[] | null;
  header: boolean;
  /** The columns of a CSV file without a header (the `columns` parameter, or every writable column in order). */
  columns: string[];
  delimiter: string;
  quote: string;
  /** The text of NULL in CSV; null: COPY's default, the empty unquoted field. */
  nullText: string | null;
}

/** A record a chunk refuses, kept until the chunk's end so that its rejects are recorded in file order. */
interface Refusal {
  error: unknown;
  origin: { line: number; byteOffset: number; text: string };
  column: string | null;
  /** Unreadable (malformed JSON, an unknown key), or refused by the target. */
  read: boolean;
}

/** Records of a chunk as COPY takes them: their bytes, where each starts, and where each came from in the file. */
interface Records {
  data: Buffer;
  /** Where each record starts in `data`, and where the last one ends: one more than the records. */
  bounds: ArrayLike<number>;
  /** The physical line of `data` where each record starts (a quoted newline makes a record two lines). */
  lines: ArrayLike<number>;
  origin(i: number): { line: number; byteOffset: number; text: string };
}

/**
 * The built-in `import` (docs/jobs.md#import): an uploaded CSV or NDJSON data set (ImportFiles) into a target table.
 * A chunk is `chunkSize` records found by a quote-aware scan of the stored bytes (record-scanner.ts), whose raw bytes
 * go to `COPY … FROM STDIN` (an NDJSON record is first made a CSV line); an upsert copies them into a temporary table
 * and writes them with `INSERT … SELECT … ON CONFLICT`. The step's position (byte offset and line) is saved with
 * each chunk, so a restart reads on from there. A chunk COPY refuses is narrowed to the records at fault by the line
 * COPY names (a refusal without one is bisected), and each is a reject with its line, byte offset and column.
 */
@BatchJob()
@Injectable()
export class ImportJob implements JobProvider {
  readonly definition: JobDefinition;
  private readonly plans = new WeakMap<JobRun, Promise<ImportPlan>>();
  private readonly fileOfRun = new WeakMap<JobRun, Promise<ImportFile>>();
  /**
   * The next chunk of each file being loaded, read on another connection and scanned while this chunk's COPY runs (so
   * that the database and the service work on both at once), by where it starts and how many bytes it read.
   */
  private readonly ahead = new Map<string, { offset: number; window: number; scan: Promise<Scan | null> }>();

  constructor(
    private readonly db: Database,
    private readonly catalog: CatalogService,
    private readonly files: ImportFiles,
  ) {
    this.definition = job('import')
      .describe('Loads an uploaded CSV or NDJSON data set into a target table (POST /api/imports)')
      .parameter('target', { type: 'string', required: true, description: 'the table written (`schema.table`)' })
      .parameter('mode', MODE)
      .parameter('conflictKey', CONFLICT_KEY)
      .parameter('columns', { type: 'names', description: 'CSV without a header: the columns of its fields, in order' })
      .parameter('format', { type: 'string', values: ['csv', 'ndjson'], required: true, description: 'the format' })
      .parameter('sha256', { type: 'string', required: true, description: 'of the body as uploaded' })
      .option('header', { type: 'boolean', default: true, description: 'CSV: the first record names the columns' })
      .option('delimiter', { type: 'string', default: ',', description: 'CSV: the field delimiter, one character' })
      .option('quote', { type: 'string', default: '"', description: 'CSV: the quote, one character' })
      .option('null', { type: 'string', description: 'CSV: the text of NULL (default the empty unquoted field)' })
      .option('skipLimit', { type: 'integer', default: 0, min: 0, description: 'records that may be rejected' })
      .option('chunkSize', {
        type: 'integer',
        // a chunk of this many narrow records fills the 4 MiB window: fewer commits, and COPYs long enough that the
        // next chunk's reading hides behind them
        default: 100_000,
        min: 1,
        max: 1_000_000,
        description: 'records per chunk (fewer where 4 MiB of the file holds fewer)',
      })
      .grants(async (parameters) => {
        const target = String(parameters.target);
        const written = (await this.catalog.find(target))?.name ?? target;
        return { reads: [], writes: [written], given: { [written]: target } };
      })
      .validate(async (parameters, options) => {
        const plan = await this.planOf(parameters, options);
        if (plan.format === 'csv' && !plan.header) checkColumns(plan, plan.columns);
      })
      .identify(async (parameters) => {
        const target = await this.catalog.find(String(parameters.target));
        if (!target) throw new BatchError('UNKNOWN_TARGET', `No target table ${String(parameters.target)}`);
        return { ...parameters, target: target.name, conflictKey: conflictKeyOf(parameters, target) };
      })
      .step(
        'load',
        tasklet(
          (tx, step) => this.loadChunk(tx, step),
          (step) => this.open(step),
        ),
      )
      .build();
  }

  /** The launch's target and COPY settings, checked: the contract's error for what is not right. */
  async planOf(parameters: JobParameters, options: JobParameters): Promise<ImportPlan> {
    const target = await this.catalog.find(String(parameters.target));
    if (!target) throw new BatchError('UNKNOWN_TARGET', `No target table ${String(parameters.target)}`);
    const conflictKey = conflictKeyOf(parameters, target);
    const delimiter = String(options.delimiter ?? ',');
    const quote = String(options.quote ?? '"');
    for (const [name, char] of [
      ['delimiter', delimiter],
      ['quote', quote],
    ])
      if (Buffer.byteLength(char) !== 1 || char === '\n' || char === '\r')
        throw invalidField(name, 'must be one single-byte character other than a newline');
    if (delimiter === quote) throw invalidField('quote', 'must differ from the delimiter');
    const columns =
      parameters.columns === undefined
        ? [...target.columns.values()].filter((c) => !c.generatedAlways).map((c) => c.name)
        : namesOf(parameters.columns)!;
    return {
      target,
      format: parameters.format === 'ndjson' ? 'ndjson' : 'csv',
      conflictKey,
      header: options.header !== false,
      columns,
      delimiter,
      quote,
      nullText: options.null === undefined ? null : String(options.null),
    };
  }

  private plan(run: JobRun): Promise<ImportPlan> {
    let plan = this.plans.get(run);
    if (!plan) this.plans.set(run, (plan = this.planOf(run.parameters, run.options)));
    return plan;
  }

  /** The run's data set, looked up once a run (it never changes while an import of it runs). */
  private fileOf(run: JobRun): Promise<ImportFile> {
    let file = this.fileOfRun.get(run);
    if (!file) {
      file = this.files.find(run.clientId, String(run.parameters.sha256)).then((found) => {
        if (!found) throw new Error(`the data set ${String(run.parameters.sha256)} of this import is no longer stored`);
        return found;
      });
      this.fileOfRun.set(run, file);
      file.catch(() => this.fileOfRun.delete(run));
    }
    return file;
  }

  /** The step starts or resumes: its progress is the bytes read of the file's. */
  private async open(step: StepRun): Promise<void> {
    const file = await this.fileOf(step.job);
    step.context.offset ??= 0;
    step.context.line ??= 1;
    step.progress(Number(step.context.offset), file.bytes, 'bytes');
  }

  /** The next `chunkSize` records after the saved position, loaded; the position moved past them. */
  private async loadChunk(tx: PoolClient, step: StepRun): Promise<'CONTINUABLE' | 'FINISHED'> {
    const plan = await this.plan(step.job);
    const file = await this.fileOf(step.job);
    let offset = Number(step.context.offset ?? 0);
    let line = Number(step.context.line ?? 1);
    if (offset === 0) {
      const head = await this.files.read(tx, file.id, 0, BOM.length);
      if (head.equals(BOM)) offset = BOM.length;
    }
    const quote = plan.format === 'csv' ? plan.quote.charCodeAt(0) : null;
    if (plan.format === 'csv' && step.context.columns === undefined) {
      if (plan.header) {
        const header = await this.scan(tx, file, offset, line, 1, quote, SMALL_WINDOW);
        const text = header.buffer.toString('utf8', 0, header.records.end).replace(/\r?\n$/, '');
        step.context.columns = checkColumns(plan, csvFields(text, plan.delimiter, plan.quote));
        offset += header.records.end;
        line = header.records.endLine;
      } else step.context.columns = plan.columns;
    }
    const size = Number(step.job.options.chunkSize);
    const window = Number(step.context.window ?? FIRST_WINDOW);
    const { buffer, records: scanned, atEnd, converted } = await this.scan(tx, file, offset, line, size, quote, window);
    const count = recordsKept(buffer, scanned, atEnd);
    const full = scanned.starts.length === size;
    const next = full
      ? Math.max(SMALL_WINDOW, Math.ceil(scanned.end * 1.05))
      : Math.max(window, Math.min(window * 4, WINDOW));
    if (!atEnd) this.readAhead(plan, file, offset + scanned.end, next, scanned.endLine, size);
    const refused: Refusal[] = [];
    if (count > 0) {
      if (plan.format === 'csv') {
        const records = csvRecords(buffer, scanned, count, offset);
        await this.load(tx, plan, step, refused, step.context.columns as string[], records);
      } else {
        const lines = converted ?? (await ndjsonLines(buffer, scanned, count, offset, plan.target.columns));
        await this.loadNdjson(tx, plan, step, refused, lines);
      }
    }
    for (const { error, origin, column, read } of refused.sort((a, b) => a.origin.byteOffset - b.origin.byteOffset)) {
      skip(step, error, origin.text, { line: origin.line, byteOffset: origin.byteOffset, column });
      if (read) step.counts.readSkipCount += 1;
      else step.counts.writeSkipCount += 1;
    }
    step.counts.readCount += count;
    step.context.window = next; // a full chunk's bytes, and a little more, are what the next one reads first
    step.context.offset = offset + scanned.end;
    step.context.line = scanned.endLine;
    step.progress(Number(step.context.offset), file.bytes, 'bytes');
    return atEnd && scanned.end >= buffer.length ? 'FINISHED' : 'CONTINUABLE';
  }

  /** Up to `max` records from `offset`: the bytes read (from `offset`) and where the records are in them. */
  private async scan(
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
    for (let window = first; ; window *= 2) {
      const found = scanWindow(await this.files.read(tx, file.id, offset, window), file, offset, line, max, quote);
      if (found) return found;
      if (window >= MOST_WINDOW) throw new Error(`a record at line ${line} is longer than ${MOST_WINDOW} bytes`);
    }
  }

  /**
   * Reads and scans the next chunk ahead, on a connection of the pool, and makes its NDJSON records CSV lines
   * (failed, it is read again in its chunk).
   */
  private readAhead(plan: ImportPlan, file: ImportFile, offset: number, window: number, line: number, max: number) {
    const quote = plan.format === 'csv' ? plan.quote.charCodeAt(0) : null;
    const scan = this.files
      .read(this.db.pool, file.id, offset, window)
      .then(async (buffer) => {
        const found = scanWindow(buffer, file, offset, line, max, quote);
        if (found && plan.format === 'ndjson') {
          const count = recordsKept(found.buffer, found.records, found.atEnd);
          found.converted = await ndjsonLines(found.buffer, found.records, count, offset, plan.target.columns);
        }
        return found;
      })
      .catch(() => null);
    this.ahead.set(file.id, { offset, window, scan });
  }

  /** NDJSON records made CSV lines (ndjsonLines), loaded run by run; the unreadable ones refused. */
  private async loadNdjson(
    tx: PoolClient,
    plan: ImportPlan,
    step: StepRun,
    refused: Refusal[],
    lines: NdjsonLines,
  ): Promise<void> {
    refused.push(...lines.unreadable);
    for (const run of lines.runs) await this.load(tx, plan, step, refused, run.columns, run.records);
  }

  /** Records into the target: COPY for an insert; COPY into a temporary table and INSERT … ON CONFLICT for an upsert. */
  private async load(
    tx: PoolClient,
    plan: ImportPlan,
    step: StepRun,
    refused: Refusal[],
    columns: string[],
    records: Records,
  ): Promise<void> {
    const list = columns.map(quoteIdent).join(', ');
    const options = copyOptions(plan);
    const copyStatement = (table: string) => `COPY ${table} (${list}) FROM STDIN WITH (${options})`;
    if (!plan.conflictKey) {
      await this.copyAll(tx, plan, step, refused, columns, copyStatement(tableName(plan.target)), records, null);
      return;
    }
    await tx.query(
      `CREATE TEMP TABLE IF NOT EXISTS import_rows ON COMMIT DROP AS SELECT ${list} FROM ${tableName(plan.target)} WITH NO DATA;
       ALTER TABLE import_rows ADD COLUMN ord bigint GENERATED ALWAYS AS IDENTITY`,
    );
    const loaded: number[] = [];
    records = await this.copyAll(tx, plan, step, refused, columns, copyStatement('import_rows'), records, loaded);
    if (await this.upsertAll(tx, plan, columns)) step.counts.writeCount += loaded.length;
    else {
      const key = plan.conflictKey.map(quoteIdent).join(', ');
      // the n-th record of each conflict key in layer n: a layer writes each key once, and the layers go in order, so
      // that every record is applied (or refused) after the ones of its key before it, as one at a time would
      const { rows } = await tx.query<{ ord: string; layer: number }>(
        `SELECT ord, (row_number() OVER (PARTITION BY ${key} ORDER BY ord))::int AS layer FROM import_rows ORDER BY ord`,
      );
      const layers: { ords: string[]; records: number[] }[] = [];
      rows.forEach(({ ord, layer }, i) => {
        layers[layer - 1] ??= { ords: [], records: [] };
        layers[layer - 1].ords.push(ord);
        layers[layer - 1].records.push(loaded[i]);
      });
      const upsert = upsertStatement(plan, columns, 'ord = ANY($1::bigint[])');
      for (const layer of layers)
        await this.upsertRows(tx, step, refused, upsert, records, layer, 0, layer.ords.length);
    }
    await tx.query(`DROP TABLE import_rows`);
  }

  /**
   * The records by `copy` at once; refused, sifted (sift), then narrowed (copyRecords). Returns the records copied
   * from (the sifted ones, where they were), which `loaded` indexes.
   */
  private async copyAll(
    tx: PoolClient,
    plan: ImportPlan,
    step: StepRun,
    refused: Refusal[],
    columns: string[],
    copy: string,
    records: Records,
    loaded: number[] | null,
  ): Promise<Records> {
    const count = records.bounds.length - 1;
    const failure = await attemptCopy(tx, copy, records, 0, count);
    if (failure === null) {
      if (loaded) for (let i = 0; i < count; i++) loaded.push(i);
      else step.counts.writeCount += count;
      return records;
    }
    const sifted = await this.sift(tx, plan, columns, refused, records, failure);
    const from = sifted ?? records;
    await this.copyRecords(
      tx,
      step,
      refused,
      copy,
      from,
      0,
      from.bounds.length - 1,
      loaded,
      sifted ? undefined : failure,
    );
    return from;
  }

  /**
   * COPY of records [from, to) under a savepoint. Refused at a line, the records before that line are copied again,
   * the record on it is tried alone (rejected when it is refused again: COPY counts some quoted newlines and not
   * others, so its line only says where to look), and the rest copied in turn; refused without a line, halved.
   * `loaded` collects what went in.
   */
  private async copyRecords(
    tx: PoolClient,
    step: StepRun,
    refused: Refusal[],
    copy: string,
    records: Records,
    from: number,
    to: number,
    loaded: number[] | null,
    failed?: unknown,
  ): Promise<void> {
    const attempt = async (first: number, end: number): Promise<unknown> => {
      const failure = await attemptCopy(tx, copy, records, first, end);
      if (failure !== null) return failure;
      if (loaded) for (let i = first; i < end; i++) loaded.push(i);
      else step.counts.writeCount += end - first;
      return null;
    };
    for (let start = from; start < to;) {
      const failure = start === from && failed !== undefined ? failed : await attempt(start, to);
      if (failure === null) return;
      const line = copyLineOf(failure);
      if (line === null) {
        if (to - start === 1) return refuse(refused, records, start, failure);
        const middle = Math.floor((start + to) / 2);
        await this.copyRecords(tx, step, refused, copy, records, start, middle, loaded);
        return this.copyRecords(tx, step, refused, copy, records, middle, to, loaded);
      }
      let suspect = start;
      while (suspect + 1 < to && records.lines[suspect + 1] - records.lines[start] < line) suspect += 1;
      if (suspect > start) await this.copyRecords(tx, step, refused, copy, records, start, suspect, loaded);
      const alone = suspect === start && to - start === 1 ? failure : await attempt(suspect, suspect + 1);
      if (alone !== null) refuse(refused, records, suspect, alone);
      start = suspect + 1;
    }
  }

  /**
   * A chunk the target refused, sifted before it is copied again (the refusal named its record, and the records before
   * it were taken): of the records after it, those whose text the target takes for certain are left as they are
   * (doubtful-records.ts), and the others are judged in the database (refusedOf). Those it refuses are rejected, and the
   * chunk's other records are returned to be copied into the target at once, where only what the text cannot tell (a
   * constraint, a trigger) is narrowed record by record (copyRecords). Null, and nothing rejected, when the refusal
   * names no single-line record.
   */
  private async sift(
    tx: PoolClient,
    plan: ImportPlan,
    columns: string[],
    refused: Refusal[],
    records: Records,
    failure: unknown,
  ): Promise<Records | null> {
    const count = records.bounds.length - 1;
    const bad = recordAt(records, 0, count, failure);
    if (bad === null) return null;
    refuse(refused, records, bad, failure);
    const shape = recordShape(
      columns.map((name) => plan.target.columns.get(name)!),
      csvOptions(plan),
    );
    // bytes that are not UTF-8 are COPY's to judge: the tests read bytes
    const doubtful = isUtf8(records.data)
      ? doubtfulRecords(records.data, records.bounds, bad + 1, shape)
      : Array.from({ length: count - bad - 1 }, (_, k) => bad + 1 + k);
    const rejected = doubtful.length ? await this.refusedOf(tx, plan, columns, refused, only(records, doubtful)) : [];
    return without(records, [bad, ...rejected.map((k) => doubtful[k])]);
  }

  /**
   * The records the target refuses for their text, each a reject, found in the database: copied into a scratch table as
   * text, each COPY going on after the record it cannot read (a wrong number of fields, say), their values then read as
   * the target's columns read them (batch.refused_values). Returns their indexes, in order.
   */
  private async refusedOf(
    tx: PoolClient,
    plan: ImportPlan,
    columns: string[],
    refused: Refusal[],
    records: Records,
  ): Promise<number[]> {
    const count = records.bounds.length - 1;
    const rejected: number[] = [];
    const fields = columns.map((_, i) => `c${i + 1}`);
    await tx.query(
      `DROP TABLE IF EXISTS import_sift; DROP SEQUENCE IF EXISTS import_sift_count;
       CREATE TEMP TABLE import_sift (${fields.map((field) => `${field} text`).join(', ')},
         ord bigint GENERATED ALWAYS AS IDENTITY (MINVALUE 0 CACHE 10000)) ON COMMIT DROP;
       CREATE TEMP SEQUENCE import_sift_count`,
    );
    const copy = `COPY import_sift (${fields.join(', ')}) FROM STDIN WITH (${copyOptions(plan)})`;
    // each row's ord is its record's index
    const copyText = async (first: number, end: number) => {
      await tx.query(`SELECT setval(pg_get_serial_sequence('import_sift', 'ord'), $1, false)`, [first]);
      return attemptCopy(tx, copy, records, first, end);
    };
    for (let start = 0; start < count;) {
      const refusal = await copyText(start, count);
      if (refusal === null) break;
      const next = recordAt(records, start, count, refusal);
      if (next === null) break; // the target's COPY narrows the rest
      if (next > start) await copyText(start, next); // read before: unless refused now, the target's COPY narrows them
      rejected.push(next);
      refuse(refused, records, next, refusal);
      start = next + 1;
    }
    let values: { ord: string; code: string; message: string; field: string | null }[] = [];
    // failed as a whole (a type's input raising what no value should), it leaves the records to the target's COPY
    await attempt(tx, async () => {
      ({ rows: values } = await tx.query(
        `SELECT * FROM batch.refused_values('import_sift', $1::regclass, $2, 'import_sift_count')`,
        [tableName(plan.target), columns],
      ));
    });
    for (const { ord, code, message, field } of values) {
      rejected.push(Number(ord));
      refuse(refused, records, Number(ord), { code, message, column: field });
    }
    await tx.query(`DROP TABLE import_sift; DROP SEQUENCE import_sift_count`);
    return rejected.sort((a, b) => a - b);
  }

  /**
   * The copied rows in one statement, as most data sets can go: true when it went in; false when it must go in layers,
   * or was refused (then halved down to the rows at fault). Two rows of one conflict key need layers only where they
   * update: PostgreSQL refuses a statement that would change one row twice (21000); with nothing but key columns to
   * write, rows of one key are the same row, and the one statement leaves what the layers would.
   */
  private async upsertAll(tx: PoolClient, plan: ImportPlan, columns: string[]): Promise<boolean> {
    const upsert = upsertStatement(plan, columns, 'true');
    return (await attempt(tx, () => tx.query(upsert))) === null;
  }

  /** The copied rows [from, to) of a layer written to the target; refused, halved down to the rows at fault. */
  private async upsertRows(
    tx: PoolClient,
    step: StepRun,
    refused: Refusal[],
    upsert: string,
    records: Records,
    layer: { ords: string[]; records: number[] },
    from: number,
    to: number,
  ): Promise<void> {
    if (from >= to) return;
    const ords = layer.ords.slice(from, to);
    const failure = await attempt(tx, () => tx.query(upsert, [ords]));
    if (failure === null) {
      step.counts.writeCount += to - from;
      return;
    }
    if (to - from === 1) return refuse(refused, records, layer.records[from], failure);
    const middle = Math.floor((from + to) / 2);
    await this.upsertRows(tx, step, refused, upsert, records, layer, from, middle);
    await this.upsertRows(tx, step, refused, upsert, records, layer, middle, to);
  }
}

/**
 * The columns a CSV header (or the `columns` parameter) names, checked against the target: each a writable column,
 * none twice, every NOT NULL column without a default among them, and for an upsert its conflict key.
 */
export function checkColumns(plan: ImportPlan, columns: string[]): string[] {
  const { target } = plan;
  const seen = new Set<string>();
  for (const name of columns) {
    const column = target.columns.get(name);
    if (!column) throw new BatchError('UNKNOWN_COLUMN', `${target.name} has no column ${name}`, { column: name });
    if (column.generatedAlways) throw invalidField('columns', `${name} is generated and cannot be written`);
    if (seen.has(name)) throw invalidField('columns', `${name} is named twice`);
    seen.add(name);
  }
  const missing = [...target.columns.values()].find(
    (c) => c.notNull && !c.hasDefault && !c.generatedAlways && !seen.has(c.name),
  );
  if (missing)
    throw invalidField('columns', `${missing.name} is NOT NULL without a default, and the data has no such column`);
  const unkeyed = plan.conflictKey?.find((name) => !seen.has(name));
  if (unkeyed) throw invalidField('columns', `the conflict key's ${unkeyed} is not among the data's columns`);
  return columns;
}

/** A window of a file's bytes from some offset, and the records found in it (NDJSON: made CSV lines, when ahead). */
interface Scan {
  buffer: Buffer;
  records: ScannedRecords;
  atEnd: boolean;
  converted?: NdjsonLines;
}

/** A chunk's NDJSON records as CSV lines, in runs of records with the same keys (a COPY names its columns). */
interface NdjsonLines {
  runs: { columns: string[]; records: Records }[];
  /** Records that are no JSON object of the target's columns. */
  unreadable: Refusal[];
}

/** Records converted between two turns of the event loop, so that a chunk's conversion does not hold it up. */
const CONVERTED_PER_TURN = 1000;

/**
 * The `count` NDJSON records scanned in `buffer` (read from `base`), each made a CSV line: written from its bytes where
 * it is flat (flatRecordInto, most records), else by ndjsonRecord from its text (blank lines are no records). Bytes
 * that are not UTF-8 are all read as text, as ndjsonRecord reads them.
 */
async function ndjsonLines(
  buffer: Buffer,
  scanned: ScannedRecords,
  count: number,
  base: number,
  columns: Map<string, TargetColumn>,
): Promise<NdjsonLines> {
  const origin = (i: number) => ({
    line: scanned.lines[i],
    byteOffset: base + scanned.starts[i],
    text: recordText(buffer, scanned.starts[i], endOf(scanned, i)),
  });
  const converted: NdjsonLines = { runs: [], unreadable: [] };
  const utf8 = isUtf8(buffer.subarray(scanned.starts[0] ?? 0, count > 0 ? endOf(scanned, count - 1) : 0));
  const keys: RecordKeys = { names: [], bytes: [] };
  type Run = { columns: string[]; out: ByteWriter; bounds: number[]; lines: number[]; origins: number[] };
  let run = null as Run | null; // set by the closures below
  const close = () => {
    if (!run) return;
    const { origins } = run;
    converted.runs.push({
      columns: run.columns,
      records: { data: run.out.data(), bounds: run.bounds, lines: run.lines, origin: (i) => origin(origins[i]) },
    });
    run = null;
  };
  /** A new run after the open one, its bytes in `out`. */
  const open = (columns: string[], out = new ByteWriter()): Run => {
    close();
    return (run = { columns, out, bounds: [0], lines: [1], origins: [] });
  };
  const add = (to: Run, i: number, newlines: number) => {
    to.bounds.push(to.out.length);
    to.lines.push(to.lines[to.lines.length - 1] + newlines);
    to.origins.push(i);
  };
  let spare = new ByteWriter(); // where a record is written while no run is open
  for (let i = 0; i < count; i++) {
    if (i > 0 && i % CONVERTED_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    const [start, end] = [scanned.starts[i], endOf(scanned, i)];
    // a flat record is written straight into the open run, and moved when it starts another
    const out: ByteWriter = run ? run.out : spare;
    const mark = out.length;
    const names = utf8 ? flatRecordInto(buffer, start, end, columns, out, keys) : null;
    if (names) {
      let to: Run;
      if (!run) {
        to = open(names, spare);
        spare = new ByteWriter();
      } else if (sameColumns(run.columns, names)) to = run;
      else {
        const line = Buffer.from(out.data().subarray(mark));
        out.length = mark;
        to = open(names);
        to.out.bytes(line, 0, line.length);
      }
      add(to, i, 1); // a flat record's line holds no newline but its end
      continue;
    }
    const text = buffer.toString('utf8', start, end).trim();
    if (text === '') continue; // a blank line is no record
    let record;
    try {
      record = ndjsonRecord(text, columns);
    } catch (error) {
      if (!(error instanceof RecordProblem)) throw error;
      converted.unreadable.push({ error, origin: origin(i), column: error.column, read: true });
      continue;
    }
    const to: Run = run && sameColumns(run.columns, record.columns) ? run : open(record.columns);
    const line = Buffer.from(record.line);
    to.out.bytes(line, 0, line.length);
    add(to, i, newlines(line));
  }
  close();
  return converted;
}

/** Up to `max` records found in the bytes read from `offset`; null when there is none and the file goes on. */
function scanWindow(
  buffer: Buffer,
  file: ImportFile,
  offset: number,
  line: number,
  max: number,
  quote: number | null,
): Scan | null {
  const atEnd = offset + buffer.length >= file.bytes;
  const records = scanRecords(buffer, 0, max, quote, atEnd, line);
  return records.starts.length > 0 || atEnd ? { buffer, records, atEnd } : null;
}

/** How many of the scanned records are loaded: all but blank lines at the very end of the file. */
function recordsKept(buffer: Buffer, scanned: ScannedRecords, atEnd: boolean): number {
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

function endOf(scanned: ScannedRecords, i: number): number {
  return i + 1 < scanned.starts.length ? scanned.starts[i + 1] : scanned.end;
}

function csvRecords(buffer: Buffer, scanned: ScannedRecords, count: number, base: number): Records {
  const bounds = new Float64Array(count + 1);
  bounds.set(scanned.starts.subarray(0, count));
  bounds[count] = count < scanned.starts.length ? scanned.starts[count] : scanned.end;
  return {
    data: buffer,
    bounds,
    lines: scanned.lines,
    origin: (i) => ({
      line: scanned.lines[i],
      byteOffset: base + scanned.starts[i],
      text: recordText(buffer, bounds[i], bounds[i + 1]),
    }),
  };
}

function refuse(refused: Refusal[], records: Records, i: number, error: unknown): void {
  refused.push({ error, origin: records.origin(i), column: columnOf(error), read: false });
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
function recordText(buffer: Buffer, start: number, end: number): string {
  return buffer.toString('utf8', start, Math.min(end, start + RECORD_TEXT)).replace(/\r?\n$/, '');
}

/** The record (1-based, of the COPY's data) COPY names in its error's context: `COPY t, line 3, column qty: …`. */
function copyLineOf(error: unknown): number | null {
  const match = /^COPY [^,]*, line (\d+)/m.exec(String((error as { where?: unknown })?.where ?? ''));
  return match ? Number(match[1]) : null;
}

function columnOf(error: unknown): string | null {
  const e = error as { where?: unknown; column?: unknown } | null;
  const match = /^COPY [^,]*, line \d+, column ([^:]+):/m.exec(String(e?.where ?? ''));
  return match ? match[1] : typeof e?.column === 'string' ? e.column : null;
}

function copyInto(tx: PoolClient, copy: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = tx.query(copyFrom(copy));
    stream.on('error', reject);
    stream.on('finish', resolve);
    stream.end(data);
  });
}

/** A COPY of records [first, end) under a savepoint: null when they went in, else why not (a lost connection thrown). */
async function attemptCopy(
  tx: PoolClient,
  copy: string,
  records: Records,
  first: number,
  end: number,
): Promise<unknown> {
  const data = records.data.subarray(records.bounds[first], records.bounds[end]);
  return attempt(tx, () => copyInto(tx, copy, data));
}

/** Work under a savepoint: null when it went through, else why not (a lost connection or a conflict thrown). */
async function attempt(tx: PoolClient, work: () => Promise<unknown>): Promise<unknown> {
  let failure: unknown = null;
  if (await underSavepoint(tx, work, (error) => (failure = error))) return null;
  if (isConnectionError(failure) || isConcurrencyConflict(failure)) throw failure;
  return failure;
}

/**
 * The record a refused COPY of records [first, end) names, where it is refused for its own text, whatever the table
 * holds or the records before it do: a data exception (SQLSTATE class 22: a value that cannot be read or cast, a wrong
 * number of fields) raised by COPY itself, not by a trigger; and where its line says which record for certain: every
 * record before it in the COPY is one line (else COPY's count is a hint only). Null otherwise.
 */
function recordAt(records: Records, first: number, end: number, failure: unknown): number | null {
  const { code, where } = (failure ?? {}) as { code?: unknown; where?: unknown };
  const line = copyLineOf(failure);
  if (line === null || !String(code).startsWith('22') || !String(where).startsWith('COPY ')) return null;
  const record = first + line - 1;
  return record < end && records.lines[record] - records.lines[first] === record - first ? record : null;
}

/** The records but the rejected ones (given in order). */
function without(records: Records, rejected: number[]): Records {
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
function only(records: Records, indexes: ArrayLike<number>): Records {
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

function copyOptions(plan: ImportPlan): string {
  const { delimiter, quote, nullText } = csvOptions(plan);
  const options = [`FORMAT csv`, `DELIMITER ${literal(delimiter)}`, `QUOTE ${literal(quote)}`];
  if (nullText !== null) options.push(`NULL ${literal(nullText)}`);
  return options.join(', ');
}

/** How COPY reads the records: an NDJSON record is a CSV line of COPY's defaults (ndjsonRecord). */
function csvOptions(plan: ImportPlan): Pick<ImportPlan, 'delimiter' | 'quote' | 'nullText'> {
  return plan.format === 'ndjson' ? { delimiter: ',', quote: '"', nullText: null } : plan;
}

/** The upsert of the copied rows that `where` keeps. */
function upsertStatement(plan: ImportPlan, columns: string[], where: string): string {
  const key = plan.conflictKey!.map(quoteIdent).join(', ');
  const list = columns.map(quoteIdent).join(', ');
  const updated = columns.filter((column) => !plan.conflictKey!.includes(column));
  const action = updated.length
    ? `DO UPDATE SET ${updated.map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}`
    : 'DO NOTHING';
  return `INSERT INTO ${tableName(plan.target)} (${list})
          SELECT ${list} FROM import_rows WHERE ${where} ORDER BY ${key} ON CONFLICT (${key}) ${action}`;
}

function tableName(target: TargetTable): string {
  return `${quoteIdent(target.schema)}.${quoteIdent(target.table)}`;
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
