import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type { PoolClient } from 'pg';
import { AppConfig } from '../../config/app-config';
import type { JobGrants, JobParameters } from '../../interfaces/job.interfaces';
import { BatchError, invalidField } from '../batch-error';
import { parseJson, stringifyJson } from '../exact-json';
import {
  BatchJob,
  CONFLICT_KEY,
  conflictKeyOf,
  job,
  JobDefinition,
  JobProvider,
  JobRun,
  MODE,
  skip,
  StepRun,
  tasklet,
} from '../jobs';
import { CatalogService } from '../storage/catalog.service';
import { MAIN } from '../storage/named-databases';
import { TargetLedgers } from '../storage/target-ledger';
import { Database, quoteIdent } from '../storage/database';
import { Records, recordsKept, recordText, Refusal, Scan } from './chunk-records';
import { ChunkWindows, FIRST_WINDOW, nextWindow, SMALL_WINDOW } from './chunk-windows';
import { copyAll, copyOptions, tableName } from './copy-loading';
import { FORMATS } from './formats/formats';
import { ImportFile, ImportFiles } from './import-files';
import { ImportPlan, planOf } from './import-plan';
import { csvFields, RecordProblem, shownText } from './records';
import { upsertRecords } from './upsert-layers';

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * The built-in `import` (docs/jobs.md#import): an uploaded data set (ImportFiles) into a target table, in chunks of
 * `chunkSize` records. A chunk's records are found in a window of the stored bytes (ChunkWindows) and made ready for
 * COPY by their format (RecordFormat: CSV as they are, an NDJSON record made a CSV line); an insert copies them into
 * the target, narrowed down to the records it refuses (copy-loading.ts); an upsert through a temporary table
 * (upsert-layers.ts). The step's position (byte offset and line) is saved with each chunk, so a restart reads on from
 * there; each refused record is a reject with its line, byte offset and column.
 */
@BatchJob()
@Injectable()
export class ImportJob implements JobProvider {
  readonly definition: JobDefinition;
  private readonly plans = new WeakMap<JobRun, Promise<ImportPlan>>();
  private readonly fileOfRun = new WeakMap<JobRun, Promise<ImportFile>>();
  private readonly windows: ChunkWindows;
  /**
   * The sha256 an upload launches with while its body is stored (it is known at the body's end): this process's own,
   * so that no launch from a caller can name it.
   */
  readonly uploading = `pending-${randomBytes(16).toString('hex')}`;

  constructor(
    config: AppConfig,
    db: Database,
    private readonly catalog: CatalogService,
    private readonly files: ImportFiles,
    private readonly ledgers: TargetLedgers,
  ) {
    this.windows = new ChunkWindows(files, db, config.limits.maxImportRecordBytes);
    this.definition = job('import')
      .describe('Loads an uploaded CSV or NDJSON data set into a target table (POST /api/imports)')
      .parameter('target', {
        type: 'string',
        required: true,
        description: 'the table written (`[database:]schema.table`)',
      })
      .parameter('mode', MODE)
      .parameter('conflictKey', CONFLICT_KEY)
      .parameter('columns', { type: 'names', description: 'CSV without a header: the columns of its fields, in order' })
      .parameter('format', {
        type: 'string',
        values: FORMATS.map((format) => format.name),
        required: true,
        description: 'the format',
      })
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
      .skipAdvice(
        (limit) =>
          `upload the same file again with skipLimit=N above ${limit} (the command line: --skip-limit N), or launch ` +
          `POST /api/jobs/import/executions with its sha256 and that option`,
      )
      .grants((parameters) => this.grants(parameters))
      .validate((parameters, options, clientId) => this.validate(parameters, options, clientId))
      .identify((parameters) => this.identify(parameters))
      .step(
        'load',
        tasklet(
          (tx, step) => this.loadChunk(tx, step),
          (step) => this.open(step),
        ),
      )
      .build();
  }

  private async grants(parameters: JobParameters): Promise<JobGrants> {
    const target = String(parameters.target);
    const written = (await this.catalog.find(target))?.name ?? target;
    return { reads: [], writes: [written], given: { [written]: target } };
  }

  /** A launch's plan checked, down to its data set being one this client uploaded. */
  private async validate(parameters: JobParameters, options: JobParameters, clientId: string): Promise<void> {
    const plan = await this.planOf(parameters, options);
    plan.format.checkPlan(plan);
    const sha256 = String(parameters.sha256);
    if (sha256 !== this.uploading && !(await this.files.find(clientId, sha256)))
      throw invalidField('sha256', 'names no data set this client uploaded (POST /api/imports stores one)');
  }

  /** A launch as what it means: its target as the catalog names it, its conflict key filled in. */
  private async identify(parameters: JobParameters): Promise<JobParameters> {
    const target = await this.catalog.find(String(parameters.target));
    if (!target) throw new BatchError('UNKNOWN_TARGET', `No target table ${String(parameters.target)}`);
    return { ...parameters, target: target.name, conflictKey: conflictKeyOf(parameters, target) };
  }

  /** The launch's target and reading settings, checked: the contract's error for what is not right. */
  planOf(parameters: JobParameters, options: JobParameters): Promise<ImportPlan> {
    return planOf(this.catalog, parameters, options);
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

  /**
   * The next `chunkSize` records after the saved position, loaded; the position moved past them. The data set is read
   * in `tx` (the job's chunk transaction); its records go into the target's database, in `tx` where that is the
   * service's own, else in a transaction there that commits the position with them (TargetLedgers.jobChunk).
   */
  private async loadChunk(tx: PoolClient, step: StepRun): Promise<'CONTINUABLE' | 'FINISHED'> {
    const plan = await this.plan(step.job);
    const { database } = plan.target;
    if (database === MAIN) return this.loadChunkInto(tx, tx, plan, step);
    return this.ledgers.jobChunk(database, step, Number(step.context.offset ?? 0), {
      write: (target) => this.loadChunkInto(tx, target, plan, step),
      position: () => ({ position: JSON.stringify(step.context), done: Number(step.context.offset) }),
      catchUp: ({ position }) => {
        Object.assign(step.context, JSON.parse(position!));
        return 'CONTINUABLE';
      },
    });
  }

  private async loadChunkInto(
    tx: PoolClient,
    target: PoolClient,
    plan: ImportPlan,
    step: StepRun,
  ): Promise<'CONTINUABLE' | 'FINISHED'> {
    const file = await this.fileOf(step.job);
    const { format } = plan;
    let offset = Number(step.context.offset ?? 0);
    let line = Number(step.context.line ?? 1);
    if (offset === 0) {
      const head = await this.files.read(tx, file.id, 0, BOM.length);
      if (head.equals(BOM)) offset = BOM.length;
    }
    const quote = format.quote(plan);
    if (format.readsHeader(plan) && step.context.columns === undefined) {
      const header = await this.windows.scan(tx, file, offset, line, 1, quote, SMALL_WINDOW);
      if (header.tooLong) throw new Error(`the header is longer than ${this.windows.maxRecordBytes} bytes`); // refused at upload
      const text = header.buffer.toString('utf8', 0, header.records.end).replace(/\r?\n$/, '');
      step.context.columns = format.headerColumns(plan, text);
      offset += header.records.end;
      line = header.records.endLine;
    }
    const columns = step.context.columns as string[] | undefined;
    const size = Number(step.job.options.chunkSize);
    const window = Number(step.context.window ?? FIRST_WINDOW);
    const found = await this.windows.scan(tx, file, offset, line, size, quote, window);
    if (found.tooLong) return this.passLongRecord(tx, step, file, offset, line, quote, found);
    const { buffer, records: scanned, atEnd } = found;
    const count = recordsKept(buffer, scanned, atEnd);
    const next = nextWindow(scanned.starts.length === size, scanned.end, window);
    if (!atEnd)
      this.windows.readAhead(
        plan,
        file,
        { offset: offset + scanned.end, line: scanned.endLine, window: next },
        size,
        columns,
      );
    const refused: Refusal[] = [];
    if (count > 0) {
      const ready = found.converted ?? (await format.toCopy(found, count, offset, plan, columns));
      refused.push(...ready.refused);
      for (const run of ready.runs) await this.load(target, plan, step, refused, run.columns, run.records);
    }
    rejectAll(step, refused, plan, columns);
    step.counts.readCount += count;
    step.context.window = next; // a full chunk's bytes, and a little more, are what the next one reads first
    step.context.offset = offset + scanned.end;
    step.context.line = scanned.endLine;
    step.progress(Number(step.context.offset), file.bytes, 'bytes');
    return atEnd && scanned.end >= buffer.length ? 'FINISHED' : 'CONTINUABLE';
  }

  /** A chunk of one record longer than BATCH_IMPORT_MAX_RECORD_BYTES, at `offset`: a reject, read past. */
  private async passLongRecord(
    tx: PoolClient,
    step: StepRun,
    file: ImportFile,
    offset: number,
    line: number,
    quote: number | null,
    scan: Scan,
  ): Promise<'CONTINUABLE' | 'FINISHED'> {
    const { end, endLine, lastLine } = await this.windows.endOfLongRecord(tx, file, offset, line, quote, scan);
    const problem = new RecordProblem(
      'RECORD_TOO_LARGE',
      `the record is longer than ${this.windows.maxRecordBytes} bytes (BATCH_IMPORT_MAX_RECORD_BYTES)`,
    );
    const origin = { line, lastLine, byteOffset: offset, text: recordText(scan.buffer, 0, scan.buffer.length) };
    rejectAll(step, [{ error: problem, origin, column: null, read: true }], await this.plan(step.job), undefined);
    step.counts.readCount += 1;
    step.context.offset = end;
    step.context.line = endLine;
    step.progress(end, file.bytes, 'bytes');
    return end >= file.bytes ? 'FINISHED' : 'CONTINUABLE';
  }

  /** Records into the target: COPY for an insert; through a temporary table for an upsert (upsert-layers.ts). */
  private async load(
    tx: PoolClient,
    plan: ImportPlan,
    step: StepRun,
    refused: Refusal[],
    columns: string[],
    records: Records,
  ): Promise<void> {
    const list = columns.map(quoteIdent).join(', ');
    const copyStatement = (table: string) => `COPY ${table} (${list}) FROM STDIN WITH (${copyOptions(plan)})`;
    if (plan.conflictKey) await upsertRecords(tx, plan, step, refused, columns, records, copyStatement);
    else await copyAll(tx, plan, step, refused, columns, copyStatement(tableName(plan.target)), records, null);
  }
}

/**
 * A chunk's refused records, each a reject in file order (or the skip limit's failure), their text as it can be stored
 * and shown (shownText: a record may hold any byte).
 */
function rejectAll(step: StepRun, refused: Refusal[], plan: ImportPlan, columns: string[] | undefined): void {
  for (const { error, origin, column, read } of refused.sort((a, b) => a.origin.byteOffset - b.origin.byteOffset)) {
    const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
    const value = valueIn(plan, columns, origin.text, column);
    const spans = origin.lastLine !== undefined && origin.lastLine > origin.line;
    const at = {
      line: origin.line,
      byteOffset: origin.byteOffset,
      column: column === null ? null : shownText(column),
      value: value === null ? null : shownText(value),
    };
    const why = shownText(String(message ?? error)) + (spans ? spanNote(origin.line, origin.lastLine!) : '');
    skip(step, { code, message: why }, shownText(origin.text), at, read ? 'read' : 'write');
  }
}

/**
 * What a reject of a record over several lines says: where it ends, and what to look at, as a quote that was meant as
 * a character opens a field that takes every line to the next quote (or to the end of the file).
 */
function spanNote(line: number, lastLine: number): string {
  return (
    ` (the record runs from line ${line} to line ${lastLine}, a quoted field holding the newlines between: ` +
    `if a quote on line ${line} is meant as a character, double it inside a quoted field)`
  );
}

/**
 * The value of `column` in a record's text (a CSV field by the data's columns, an NDJSON record's key), as a failed
 * import's description quotes it; null where the text does not tell (cut, or malformed).
 */
function valueIn(plan: ImportPlan, columns: string[] | undefined, text: string, column: string | null): string | null {
  if (column === null) return null;
  if (plan.format.quote(plan) === null) {
    try {
      const value = (parseJson(text) as Record<string, unknown>)[column];
      return value === undefined ? null : typeof value === 'string' ? value : stringifyJson(value);
    } catch {
      return null;
    }
  }
  const index = (columns ?? plan.columns).indexOf(column);
  return index < 0 ? null : (csvFields(text, plan.delimiter, plan.quote)[index] ?? null);
}
