import { Injectable } from '@nestjs/common';
import { createHash, Hash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { PoolClient } from 'pg';
import { AppConfig } from '../../config/app-config';
import type { IJobExecution, JobParameters } from '../../interfaces/job.interfaces';
import { AuthenticatedClient } from '../access/client.service';
import { BatchError, invalidField } from '../batch-error';
import { quoted } from '../quoted';
import { JobOperator, JobSignals, withDefaults } from '../jobs';
import { BLOCK_BYTES, ImportFiles, overQuota } from './import-files';
import { formatOfContentType } from './formats/formats';
import { ImportJob } from './import-job';
import type { ImportPlan } from './import-plan';
import { scanRecords } from './record-scanner';
import { UploadCapacity } from './upload-capacity';

/** How an upload is described: the query of POST /api/imports and two headers. */
export interface UploadRequest {
  query: Record<string, unknown>;
  contentType: string | undefined;
  contentEncoding: string | undefined;
}

const PARAMETERS = ['target', 'mode', 'conflictKey', 'columns', 'format', 'runId'];
const OPTIONS = ['header', 'delimiter', 'quote', 'null', 'skipLimit', 'chunkSize'];
/** The options that are text, whatever they spell (`null=0`, `delimiter=1`): the others are counts and a flag. */
const TEXT_OPTIONS = ['delimiter', 'quote', 'null'];

/**
 * POST /api/imports: the body streamed into ImportFiles inside one transaction (its sha256 computed on the way, its
 * size counted after decompression against BATCH_IMPORT_MAX_BYTES and the client's quota, its header checked against
 * the catalog as soon as it has arrived), and the `import` job launched in the same transaction. So the 202 comes once
 * the data is durable, and an upload that breaks off, stalls, is refused or is too large leaves nothing and launches
 * nothing. The transaction runs on a connection of the uploads' own (UploadCapacity), never on the pool the queue and
 * the API use, whatever the caller's pace.
 */
@Injectable()
export class ImportUploads {
  constructor(
    private readonly config: AppConfig,
    private readonly capacity: UploadCapacity,
    private readonly operator: JobOperator,
    private readonly job: ImportJob,
    private readonly files: ImportFiles,
    private readonly signals: JobSignals,
  ) {}

  async upload(client: AuthenticatedClient, request: UploadRequest, body: Readable): Promise<IJobExecution> {
    const idle = new IdleBody(body, this.config.uploads.idleTimeoutMs);
    let executionId: string;
    try {
      const release = this.capacity.admit(client);
      try {
        executionId = await this.launch(client, request, body, idle);
      } finally {
        release();
      }
    } catch (error) {
      idle.drain(); // the rest of a refused body is read, unstored, so that the answer reaches the caller
      throw error;
    }
    this.signals.wake(); // now that it is committed
    return this.operator.get(client, executionId);
  }

  /** The body stored and the job launched, in one transaction: the new execution's id. */
  private async launch(
    client: AuthenticatedClient,
    request: UploadRequest,
    body: Readable,
    idle: IdleBody,
  ): Promise<string> {
    const { parameters, options } = launchOf(request);
    const definition = this.job.definition;
    // everything but the data checked before any of it is stored; the sha256 is known at its end
    const launch = await this.operator.check(
      client,
      definition,
      { ...parameters, sha256: this.job.uploading },
      options,
    );
    const plan = await this.job.planOf(
      withDefaults(definition.parameters, launch.parameters),
      withDefaults(definition.options, launch.options),
    );
    return this.capacity.transaction(async (tx) => {
      const sha256 = await this.store(tx, client, plan, request, body, idle);
      const parameters = { ...launch.parameters, sha256 };
      const identity = await this.operator.identityOf(definition, parameters);
      return this.operator.decide(tx, client, definition, { parameters, options: launch.options, identity });
    });
  }

  /** The body stored block by block in `tx`: the sha256 of the body as sent. */
  private async store(
    tx: PoolClient,
    client: AuthenticatedClient,
    plan: ImportPlan,
    request: UploadRequest,
    body: Readable,
    idle: IdleBody,
  ): Promise<string> {
    const declared = declaredGzip(request.contentEncoding);
    const quota = this.config.uploads.clientQuotaBytes;
    const limit = this.config.limits.maxImportBytes;
    const storedBefore = await this.files.storedBytes(tx, client.id);
    const fileId = await this.files.create(tx, client.id);
    let gzip = false;
    const blocks = new FileBlocks(this.files, tx, fileId);
    const head = new HeadCheck(plan, this.config.limits.maxImportRecordBytes);
    const hash = createHash('sha256');
    const hashed = hashing(hash, idle);
    let received = 0;
    let refused: BatchError | null = null; // the pipeline reports its own abort, not why
    idle.cut = (error) => hashed.destroy((refused = error));
    // the request is piped rather than part of the pipeline, so that a refusal leaves it open to be answered
    body.once('error', (error) => hashed.destroy(error));
    body.once('close', () => {
      if ((body as { complete?: boolean }).complete === false) hashed.destroy(new Error('the upload broke off'));
    });
    body.pipe(hashed);
    const decoded = gunzipped(declared, (found) => (gzip = found));
    await pipeline(hashed, decoded, async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        received += chunk.length;
        try {
          if (received > limit)
            throw new BatchError('PAYLOAD_TOO_LARGE', `The data set is larger than ${limit} bytes (decompressed)`);
          if (storedBefore + received > quota) throw overQuota(quota, storedBefore);
          head.add(chunk);
        } catch (error) {
          throw (refused = error as BatchError);
        }
        await blocks.add(chunk);
      }
    }).catch(async (error: unknown) => {
      body.unpipe(hashed);
      idle.drain();
      await blocks.settled(); // the transaction is rolled back only once no write uses it
      if (refused) throw refused;
      if (error instanceof BatchError) throw error;
      if ((error as { code?: string }).code?.startsWith('Z_'))
        throw new BatchError('VALIDATION_FAILED', `The body is not valid gzip: ${(error as Error).message}`);
      throw error;
    });
    await blocks.finish();
    if (received === 0) throw new BatchError('VALIDATION_FAILED', 'The data set is empty');
    head.finish();
    const sha256 = hash.digest('hex');
    await this.files.finish(tx, client.id, fileId, { sha256, bytes: received, gzip }, quota);
    return sha256;
  }
}

/** How a gzip stream starts (RFC 1952): whatever the headers say, a body that starts so is gzip. */
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/**
 * The body as the data set: decompressed where it is gzip, as its first bytes tell (a body sent without its
 * Content-Encoding, as a .csv.gz file often is, is not loaded as binary); one declared gzip that does not start as gzip
 * is refused. `found` is told which it was, before any byte is passed on.
 */
function gunzipped(declared: boolean, found: (gzip: boolean) => void) {
  return async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const pieces = source[Symbol.asyncIterator]();
    let head = Buffer.alloc(0);
    while (head.length < GZIP_MAGIC.length) {
      const next = await pieces.next();
      if (next.done) break;
      head = Buffer.concat([head, next.value]);
    }
    const gzip = head.subarray(0, GZIP_MAGIC.length).equals(GZIP_MAGIC);
    if (declared && !gzip && head.length > 0)
      throw new BatchError(
        'VALIDATION_FAILED',
        'The body is not gzip, as its Content-Encoding says: send the data as it is without that header',
      );
    found(gzip);
    const body = (async function* () {
      if (head.length > 0) yield head;
      for (let next = await pieces.next(); !next.done; next = await pieces.next()) yield next.value;
    })();
    if (!gzip) return yield* body;
    const gunzip = createGunzip();
    pipeline(Readable.from(body), gunzip).catch(() => undefined); // a failure ends gunzip's reading below with it
    yield* gunzip;
  };
}

/**
 * A request body watched for a caller that sends nothing: once it has sent nothing for `ms` while it was read, `cut`
 * refuses the upload (REQUEST_TIMEOUT: its transaction rolls back, and the answer closes the connection); a body that
 * still sends nothing after that, or while it is drained after a refusal, is destroyed with its connection. Time the
 * service holds the body back (not read yet, or paused while a block is written) is not the caller's and never counts.
 */
class IdleBody {
  /** What an idle period does while the body is stored: refuse the upload with the error given. */
  cut: ((error: BatchError) => void) | null = null;
  private readonly timer: NodeJS.Timeout;
  private draining = false;

  constructor(
    private readonly body: Readable,
    private readonly ms: number,
  ) {
    this.timer = setTimeout(() => this.idle(), ms).unref();
    const stop = () => clearTimeout(this.timer);
    body.once('end', stop);
    body.once('close', stop);
  }

  /** Bytes arrived (or the body is read again): the idle period starts over. */
  arrived(): void {
    this.timer.refresh();
  }

  /** The rest of the body read and dropped, to its end (or until it stalls). */
  drain(): void {
    this.cut = null;
    if (this.draining) return;
    this.draining = true;
    this.body.on('data', () => this.arrived());
    this.body.resume();
  }

  private idle(): void {
    if (this.body.readableFlowing !== true) return void this.timer.refresh(); // held back by the service
    const cut = this.cut;
    this.cut = null;
    if (cut) {
      cut(new BatchError('REQUEST_TIMEOUT', `The upload sent nothing for ${this.ms} ms; nothing was stored`));
      this.timer.refresh();
    } else this.body.destroy();
  }
}

/** Whether an upload says its body is gzip (Content-Encoding gzip), or as it is (none, identity); else refused. */
function declaredGzip(contentEncoding: string | undefined): boolean {
  const gzip = /^\s*gzip\s*$/i.test(contentEncoding ?? '');
  if (contentEncoding && !gzip && !/^\s*identity\s*$/i.test(contentEncoding))
    throw new BatchError(
      'VALIDATION_FAILED',
      `Content-Encoding ${quoted(contentEncoding, 40)} is not taken: send gzip, or the data as it is`,
    );
  return gzip;
}

/** The body's pieces on their way: hashed (`hash`, of the body as sent), and each counted as the caller's progress. */
function hashing(hash: Hash, idle: IdleBody): Transform {
  const hashed = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      idle.arrived();
      hash.update(chunk);
      done(null, chunk);
    },
  });
  hashed.on('drain', () => idle.arrived()); // the body is read again: from here its caller's pace counts
  return hashed;
}

/**
 * A file's blocks written as the body arrives: the whole blocks received so far (all of it at the end) go to the
 * database while the next ones are received, one write in flight at a time, awaited before the next.
 */
class FileBlocks {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private stored = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly files: ImportFiles,
    private readonly tx: PoolClient,
    private readonly fileId: string,
  ) {}

  async add(chunk: Buffer): Promise<void> {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= BLOCK_BYTES) await this.append(false);
  }

  finish(): Promise<void> {
    return this.append(true);
  }

  /** Once no write is in flight (whether it went through or not). */
  settled(): Promise<void> {
    return this.writing.catch(() => undefined);
  }

  private async append(final: boolean): Promise<void> {
    const data = Buffer.concat(this.pending);
    const whole = final ? data.length : data.length - (data.length % BLOCK_BYTES);
    this.pending = whole < data.length ? [data.subarray(whole)] : [];
    this.pendingBytes = data.length - whole;
    await this.writing;
    this.writing = (async () => {
      for (let offset = 0; offset < whole; offset += BLOCK_BYTES) {
        const block = data.subarray(offset, Math.min(whole, offset + BLOCK_BYTES));
        await this.files.append(this.tx, this.fileId, this.stored, block);
        this.stored += block.length;
      }
    })();
    this.writing.catch(() => undefined); // awaited at the next append or the end; meanwhile not an unhandled rejection
    if (final) await this.writing;
  }
}

/**
 * The start of the body checked against the catalog as it arrives (checkHead), until its first record has. It keeps
 * only what it has not read whole (from the start of the first record not yet ended, where the next check goes on),
 * and checks again when a piece brings a newline (where that record may end) once that part has doubled since the last
 * check, or passes the longest record taken: so however the records before it (blank NDJSON lines) and the record itself
 * (an open quote over many lines) arrive, each byte is scanned a bounded number of times.
 */
class HeadCheck {
  private head: Buffer | null = Buffer.alloc(0);
  private unchecked: Buffer[] = []; // pieces received since, not yet joined to it
  private uncheckedBytes = 0;
  private line = 1;
  private atStart = true;
  private due = 0;

  constructor(
    private readonly plan: ImportPlan,
    private readonly most: number,
  ) {}

  add(chunk: Buffer): void {
    if (!this.head) return;
    this.unchecked.push(chunk);
    this.uncheckedBytes += chunk.length;
    const length = this.head.length + this.uncheckedBytes;
    if (length <= this.most && (length < this.due || !chunk.includes(0x0a))) return;
    this.check(false);
  }

  finish(): void {
    if (this.head) this.check(true);
  }

  private check(atEnd: boolean): void {
    const head = Buffer.concat([this.head!, ...this.unchecked]);
    [this.unchecked, this.uncheckedBytes] = [[], 0];
    const left = checkHead(this.plan, head, { atEnd, most: this.most, line: this.line, atStart: this.atStart });
    if (left === true) {
      this.head = null;
      return;
    }
    this.head = head.subarray(left.from);
    [this.line, this.atStart] = [left.line, this.atStart && left.from === 0];
    this.due = 2 * this.head.length;
  }
}

/** The import's parameters and options from the query (typed as the job declares them) and the content type. */
function launchOf(request: UploadRequest): { parameters: JobParameters; options: JobParameters } {
  const parameters: Record<string, unknown> = {};
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(request.query)) {
    if (typeof value !== 'string') throw invalidField(name.slice(0, 100), 'must be given once, as text');
    if (PARAMETERS.includes(name)) parameters[name] = value;
    else if (OPTIONS.includes(name)) options[name] = TEXT_OPTIONS.includes(name) ? value : typed(value);
    else throw invalidField(name.slice(0, 100), 'is not a parameter of an import');
  }
  parameters.format ??= formatOfContentType(request.contentType)?.name;
  if (parameters.format === undefined)
    throw invalidField('format', 'is needed: format=csv or ndjson, or Content-Type text/csv or application/x-ndjson');
  if (options.null === '') delete options.null; // the empty unquoted field, COPY's own default
  return { parameters: parameters as JobParameters, options: options as JobParameters };
}

/** A query value as the type it spells (a count, a flag), else the text: the job's checks say what is wrong. */
function typed(value: string): string | number | boolean {
  if (/^\d{1,15}$/.test(value)) return Number(value);
  if (value === 'true' || value === 'false') return value === 'true';
  return value;
}

/**
 * The start of the data set checked against the catalog once its first record has arrived: a CSV header's columns
 * (checkColumns), an NDJSON first record's keys. Where it has not arrived, where to go on: the start of the record not
 * yet ended in `head`, and its line. A CSV header longer than the longest record taken (`most` bytes) is refused; an
 * NDJSON record that long is left to the load, which rejects it.
 */
function checkHead(
  plan: ImportPlan,
  head: Buffer,
  at: { atEnd: boolean; most: number; line: number; atStart: boolean },
): true | { from: number; line: number } {
  const { format } = plan;
  if (!format.checksFirst(plan)) return true;
  const bom = at.atStart && head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf;
  if (bom && at.atEnd && head.length === 3) throw new BatchError('VALIDATION_FAILED', 'The data set is empty');
  const quote = format.quote(plan);
  for (let from = bom ? 3 : 0, line = at.line; ;) {
    const scanned = scanRecords(head, from, 1, quote, at.atEnd, line);
    if (scanned.starts.length === 0) {
      if (at.atEnd) return true;
      if (head.length - from <= at.most) return { from, line };
      if (!format.refusesLongFirst) return true;
      throw invalidField('header', `is longer than ${at.most} bytes (BATCH_IMPORT_MAX_RECORD_BYTES)`);
    }
    const text = head.toString('utf8', from, scanned.end).replace(/\r?\n$/, '');
    if (format.checkFirst(plan, text)) return true;
    from = scanned.end;
    line = scanned.endLine;
  }
}
