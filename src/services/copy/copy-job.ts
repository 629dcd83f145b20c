import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import type { SourceTable, TargetTable } from '../../interfaces/catalog.interfaces';
import type { JobParameters } from '../../interfaces/job.interfaces';
import { BatchError, invalidField } from '../batch-error';
import { TargetLedgers } from '../storage/target-ledger';
import { usingConnection } from '../storage/pg-client';
import { CatalogService } from '../storage/catalog.service';
import { binaryCopies, CopiedRows, SERVER_MAJOR_VERSION } from './copied-rows';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { Database, quoteIdent, quoteLiteral } from '../storage/database';
import { MAIN, NamedDatabases } from '../storage/named-databases';
import { isConcurrencyConflict, isConnectionError, sqlState } from '../storage/database-error';
import {
  BatchJob,
  CONFLICT_KEY,
  conflictKeyOf,
  job,
  JobDefinition,
  JobProvider,
  JobRun,
  keyText,
  MODE,
  Partition,
  partitioned,
  skip,
  StepRun,
  tasklet,
  underSavepoint,
} from '../jobs';

/** What a copy runs: its tables, the columns written from the columns read, the key, and its chunk statement. */
interface CopyPlan {
  source: SourceTable;
  target: TargetTable;
  key: string;
  keyType: string;
  /** Target column ← source column. */
  columns: [string, string][];
  conflictKey: string[] | null;
  /** Rows streamed in COPY's binary format (copiesBinary), as worked out for a run; false where a launch is checked. */
  binary: boolean;
}

/** One chunk's statement's answer: rows read, rows written, and the last key read (the next chunk starts after it). */
interface CopiedPart {
  read: number;
  written: number;
  last: string | null;
}

const INTEGER_TYPES = ['smallint', 'integer', 'bigint'];

/**
 * Rows per chunk where the option is not given. Between two databases each chunk is a COPY out of one and into the
 * other, whose start and end (the first rows reaching the target, the last ones written after the source is done) cost
 * a few ms that a chunk of 10,000 rows does not hide: there, 100,000, as an import's chunks.
 */
const CHUNK_SIZE = 10_000;
const CHUNK_SIZE_ACROSS = 100_000;

/**
 * How a chunk reads its source in another database: its last key and its rows in one snapshot, so that the two agree
 * however the source changes meanwhile (a row deleted in between would end the copy there); values written as
 * `pg_dump` writes them, whatever the source server's own settings (a date in `SQL, DMY` style read by a target in
 * `MDY`, floats cut by `extra_float_digits = 0`).
 */
const SOURCE_READ = `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
  SET LOCAL DateStyle = ISO; SET LOCAL IntervalStyle = postgres; SET LOCAL extra_float_digits = 3`;

/**
 * Errors the source's database raised while a chunk read it there (between two databases): the chunk fails as a whole,
 * no row of it skipped, as the skip policy is for rows the target refuses.
 */
const SOURCE_ERRORS = new WeakSet<object>();

function raisedBySource(error: unknown): never {
  if (typeof error === 'object' && error !== null) SOURCE_ERRORS.add(error);
  throw error;
}

/**
 * The built-in `copy` job (docs/jobs.md#copy): rows of a source table or view into a target table, in chunks
 * ordered by a unique key, the rows never leaving PostgreSQL: each chunk is one `INSERT … SELECT … WHERE key > $last
 * ORDER BY key LIMIT n` (upserts `ON CONFLICT … DO UPDATE`), committed with the position; between two databases
 * (BATCH_DATABASES), a COPY from the source's into the target's (copyAcross). Into another database, a chunk's rows
 * commit there with the position in its ledger, then the position here (copyChunkThere). A chunk the target
 * refuses is split in halves down to the rows it refuses, each skipped as the `skipLimit` option allows. The key range
 * is cut into `partitions` ranges (integer keys) that any workers copy side by side.
 */
@Injectable()
@BatchJob()
export class CopyJob implements JobProvider {
  readonly definition: JobDefinition;
  /** Each run's plan, worked out once per worker that runs it. */
  private readonly plans = new WeakMap<JobRun, Promise<CopyPlan>>();

  constructor(
    private readonly db: Database,
    private readonly catalog: CatalogService,
    private readonly databases: NamedDatabases,
    private readonly ledgers: TargetLedgers,
  ) {
    this.definition = job('copy')
      .describe('Copies rows of a table or view into a target table, in chunks ordered by a key')
      .parameter('source', {
        type: 'string',
        required: true,
        description: 'the table or view read (`[database:]schema.table`)',
      })
      .parameter('target', {
        type: 'string',
        required: true,
        description: 'the table written (`[database:]schema.table`)',
      })
      .parameter('mode', MODE)
      .parameter('conflictKey', CONFLICT_KEY)
      .parameter('columns', {
        type: 'mapping',
        description: 'target column → source column (default the columns both have, by name)',
      })
      .parameter('keyColumn', {
        type: 'string',
        description: "the source's unique column the rows are read in order of (default its single-column primary key)",
      })
      .parameter('from', { type: 'key', description: 'copy rows whose key is greater than this' })
      .parameter('to', { type: 'key', description: 'copy rows whose key is at most this' })
      .option('chunkSize', {
        type: 'integer',
        min: 1,
        max: 1_000_000,
        description: `rows per chunk (default ${CHUNK_SIZE.toLocaleString('en')}; between two databases ${CHUNK_SIZE_ACROSS.toLocaleString('en')})`,
      })
      .option('skipLimit', { type: 'integer', default: 0, min: 0, description: 'rows the target may refuse' })
      .option('partitions', {
        type: 'integer',
        default: 1,
        min: 1,
        max: 64,
        description: 'key ranges copied side by side by any workers (integer keys)',
      })
      .grants(async (parameters) => {
        const [source, target] = [String(parameters.source), String(parameters.target)];
        const read = (await this.catalog.source(source))?.name ?? source;
        const written = (await this.catalog.find(target))?.name ?? target;
        return { reads: [read], writes: [written], given: { [read]: source, [written]: target } };
      })
      .validate((parameters) => this.validate(parameters))
      .identify((parameters) => this.identify(parameters))
      .step(
        'copy',
        partitioned(
          (run) => this.partitions(run),
          tasklet(
            (tx, step) => this.copyChunk(tx, step),
            (step) => this.open(step),
          ),
        ),
      )
      .build();
  }

  /** Checks what a launch names before anything runs, down to a plan of the statement the database accepts. */
  private async validate(parameters: JobParameters): Promise<void> {
    const plan = await this.planOf(parameters);
    const [from, to] = [keyText(parameters.from), keyText(parameters.to)];
    await this.keyValue(plan, from, 'from');
    await this.keyValue(plan, to, 'to');
    if (plan.source.isView) await this.checkViewKey(plan, from, to);
    if (from !== null && to !== null) {
      const [{ inverted }] = await this.read<{ inverted: boolean }>(
        plan,
        `SELECT $1::${plan.keyType} > $2::${plan.keyType} AS inverted`,
        [from, to],
      );
      if (inverted) throw invalidField('from', 'is greater than to');
    }
    // rows of another database are checked by the target as each chunk is copied (mappedColumns found the columns)
    if (plan.source.database !== plan.target.database) return;
    const statement = chunkStatement(plan, from, to, 1);
    await this.read(plan, `EXPLAIN ${statement.text}`, statement.values).catch((error: unknown) => {
      throw new BatchError(
        'VALIDATION_FAILED',
        `the target does not take the rows as mapped: SQLSTATE ${sqlState(error) ?? '?'}: ${(error as Error).message}`,
      );
    });
  }

  /** A launch as what it means: its tables, columns and key as the catalog names them, its bounds as key values. */
  private async identify(parameters: JobParameters): Promise<JobParameters> {
    const plan = await this.planOf(parameters);
    return {
      ...parameters,
      source: plan.source.name,
      target: plan.target.name,
      columns: Object.fromEntries(plan.columns),
      keyColumn: plan.key,
      conflictKey: plan.conflictKey,
      from: await this.keyValue(plan, keyText(parameters.from), 'from'),
      to: await this.keyValue(plan, keyText(parameters.to), 'to'),
    };
  }

  /** A key bound (`name`) as a value of the key column's type, written as PostgreSQL writes it; null stays null. */
  private async keyValue(plan: CopyPlan, bound: string | null, name: string): Promise<string | null> {
    if (bound === null) return null;
    const [{ value }] = await this.read<{ value: string }>(plan, `SELECT $1::${plan.keyType}::text AS value`, [
      bound,
    ]).catch((error: unknown) => {
      throw invalidField(name, `is not a value of the key column's type ${plan.keyType}: ${(error as Error).message}`);
    });
    return value;
  }

  /**
   * A view's key, checked over the range by reading it (the catalog cannot tell): a key that is NULL or repeated would
   * have rows read twice or never.
   */
  private async checkViewKey(plan: CopyPlan, from: string | null, to: string | null): Promise<void> {
    const key = quoteIdent(plan.key);
    const { where, values } = range(plan, from, to);
    const [{ nulls, repeated }] = await this.read<{ nulls: boolean; repeated: boolean }>(
      plan,
      `SELECT EXISTS (SELECT FROM ${sourceName(plan)} WHERE ${key} IS NULL) AS nulls,
              EXISTS (SELECT FROM ${sourceName(plan)} ${where} GROUP BY ${key} HAVING count(*) > 1) AS repeated`,
      values,
    ).catch((error: { code?: string }) => {
      // a type without equality (json, point, xml) cannot order the rows either
      if (error.code === '42883' || error.code === '42P18')
        throw invalidField('keyColumn', `must be of a type with equality and order: ${plan.source.name}.${plan.key}`);
      throw error;
    });
    if (nulls || repeated)
      throw invalidField(
        'keyColumn',
        `must be unique and NOT NULL, for the rows to be read in its order once each: ${plan.source.name}.${plan.key} ` +
          (nulls ? 'is NULL in some rows' : 'repeats a value'),
      );
  }

  /** The tables and columns a launch names, resolved in the catalog; the contract's error for each that is not there. */
  private async planOf(parameters: JobParameters): Promise<CopyPlan> {
    const target = await this.catalog.find(String(parameters.target));
    if (!target) throw new BatchError('UNKNOWN_TARGET', `No target table ${String(parameters.target)}`);
    const source = await this.catalog.source(String(parameters.source));
    if (!source) throw new BatchError('UNKNOWN_TARGET', `No source table or view ${String(parameters.source)}`);
    // each chunk would read the rows the one before wrote: a copy that may never end
    if (source.name === target.name) throw invalidField('source', `is the target itself, ${target.name}`);
    const columns = mappedColumns(parameters.columns as Record<string, string> | undefined, source, target);
    const key = parameters.keyColumn === undefined ? source.key : String(parameters.keyColumn);
    if (key === null)
      throw invalidField(
        'keyColumn',
        `is needed: ${source.name} has no primary key of one column to read it in order of`,
      );
    if (!source.columns.has(key)) throw unknownColumn(source.name, key);
    if (!source.isView && !source.uniqueKeys.includes(key))
      throw invalidField(
        'keyColumn',
        `must be unique and NOT NULL, for the rows to be read in its order once each: ${source.name}.${key} ` +
          `has no unique index of its own or may be NULL`,
      );
    const conflictKey = conflictKeyOf(parameters, target);
    const unwritten = conflictKey?.find((column) => !columns.some(([written]) => written === column));
    if (unwritten) throw invalidField('conflictKey', `names ${unwritten}, which the copy does not write`);
    return { source, target, key, keyType: source.columns.get(key)!, columns, conflictKey, binary: false };
  }

  /**
   * Whether a copy between two databases can stream its rows in COPY's binary format: both servers of one major
   * version, and each column pair of one built-in type (binaryCopies).
   */
  private async copiesBinary(plan: CopyPlan): Promise<boolean> {
    const types = plan.columns.map(([written, read]): [string, string] => [
      plan.source.columns.get(read)!,
      plan.target.columns.get(written)!.castType,
    ]);
    if (plan.source.database === plan.target.database || !binaryCopies(types)) return false;
    const [[source], [target]] = await Promise.all([
      this.read<{ major: number }>(plan, SERVER_MAJOR_VERSION, []),
      plan.target.database === MAIN
        ? this.db.query<{ major: number }>(SERVER_MAJOR_VERSION)
        : this.databases.query<{ major: number }>(plan.target.database, SERVER_MAJOR_VERSION, []),
    ]);
    return source.major === target.major;
  }

  private plan(run: JobRun): Promise<CopyPlan> {
    let plan = this.plans.get(run);
    if (!plan) {
      plan = this.planOf(run.parameters).then(async (planned) => ({
        ...planned,
        binary: await this.copiesBinary(planned),
      }));
      this.plans.set(run, plan);
    }
    return plan;
  }

  /** The key ranges (ranges), each with the rows it holds now: the step's progress has its total from the start. */
  private async partitions(run: JobRun): Promise<Partition[]> {
    const plan = await this.plan(run);
    const partitions = await this.ranges(run);
    for (const partition of partitions) {
      const { position, to } = partition.context as { position: string | null; to: string | null };
      const total = await this.rowsIn(plan, position, to);
      partition.context = { ...partition.context, total, done: 0 };
      partition.size = { total, unit: 'rows' };
    }
    return partitions;
  }

  /**
   * The key range cut into the `partitions` option's number of ranges of about as many keys (for an integer key
   * between its least and greatest value; any other key is one range).
   */
  private async ranges(run: JobRun): Promise<Partition[]> {
    const plan = await this.plan(run);
    const [from, to] = [keyText(run.parameters.from), keyText(run.parameters.to)];
    const whole: Partition[] = [{ name: '1', context: { position: from, to } }];
    const count = Number(run.options.partitions);
    if (count === 1 || !INTEGER_TYPES.includes(plan.keyType)) return whole;
    const { where, values } = range(plan, from, to);
    const [keys] = await this.read<{ least: string | null; greatest: string | null }>(
      plan,
      `SELECT min(${quoteIdent(plan.key)})::text AS least, max(${quoteIdent(plan.key)})::text AS greatest
         FROM ${sourceName(plan)} ${where}`,
      values,
    );
    if (keys.least === null || keys.greatest === null) return whole;
    const low = BigInt(keys.least) - 1n;
    const high = BigInt(keys.greatest);
    const cut = (i: number) => (low + ((high - low) * BigInt(i)) / BigInt(count)).toString();
    return Array.from({ length: count }, (_, i) => ({
      name: String(i + 1),
      context: { position: i === 0 ? from : cut(i), to: i === count - 1 ? to : cut(i + 1) },
    }));
  }

  /** A partition starts or resumes: how many rows its range holds now, for its progress (where not counted yet). */
  private async open(step: StepRun): Promise<void> {
    if (typeof step.context.total === 'number') return;
    const plan = await this.plan(step.job);
    const { position, to } = step.context as { position: string | null; to: string | null };
    const total = await this.rowsIn(plan, position, to);
    step.context.total = total;
    step.context.done ??= 0;
    step.progress(Number(step.context.done), total, 'rows');
  }

  /** The rows of the source in a key range. */
  private async rowsIn(plan: CopyPlan, after: string | null, to: string | null): Promise<number> {
    const { where, values } = range(plan, after, to);
    const [{ total }] = await this.read<{ total: number }>(
      plan,
      `SELECT count(*)::float8 AS total FROM ${sourceName(plan)} ${where}`,
      values,
    );
    return total;
  }

  /**
   * One chunk of the partition's range, after its position, in `tx` (the job's chunk transaction, in main); into
   * another database, in a transaction there which also writes the position in its ledger (copyChunkThere).
   */
  private async copyChunk(tx: PoolClient, step: StepRun): Promise<'CONTINUABLE' | 'FINISHED'> {
    const plan = await this.plan(step.job);
    if (plan.target.database !== MAIN) return this.copyChunkThere(plan, step);
    return this.copyChunkIn(tx, plan, step);
  }

  private async copyChunkIn(tx: PoolClient, plan: CopyPlan, step: StepRun): Promise<'CONTINUABLE' | 'FINISHED'> {
    const size = Number(
      step.job.options.chunkSize ?? (plan.source.database === plan.target.database ? CHUNK_SIZE : CHUNK_SIZE_ACROSS),
    );
    const part = await this.copyPart(tx, plan, step, (step.context.position as string | null) ?? null, size);
    if (part.last !== null) step.context.position = part.last;
    step.context.done = Number(step.context.done ?? 0) + part.read;
    step.progress(Number(step.context.done), Number(step.context.total ?? 0) || null, 'rows');
    return part.read < size ? 'FINISHED' : 'CONTINUABLE';
  }

  /**
   * A chunk into another database: its rows and the step's position in that database's ledger commit together there,
   * then the step's context here (the job's chunk transaction). Where the ledger is ahead of the context (the worker
   * stopped between the two commits), the context takes the ledger's position, and nothing is written again.
   */
  private async copyChunkThere(plan: CopyPlan, step: StepRun): Promise<'CONTINUABLE' | 'FINISHED'> {
    return this.ledgers.jobChunk(plan.target.database, step, Number(step.context.done ?? 0), {
      write: (tx) => this.copyChunkIn(tx, plan, step),
      position: () => ({ position: (step.context.position as string | null) ?? null, done: Number(step.context.done) }),
      catchUp: ({ position, done }) => {
        [step.context.position, step.context.done] = [position, done];
        step.progress(done, Number(step.context.total ?? 0) || null, 'rows');
        return 'CONTINUABLE';
      },
    });
  }

  /** A statement reading the source, in its database (`tx`: the chunk's transaction, where it is in that one). */
  private async read<T>(plan: CopyPlan, sql: string, values: unknown[], tx?: PoolClient): Promise<T[]> {
    if (tx && plan.source.database === plan.target.database) return (await tx.query(sql, values)).rows;
    if (plan.source.database !== MAIN) return this.databases.query<T>(plan.source.database, sql, values);
    return this.db.query<T>(sql, values);
  }

  /** `work` on a connection of the source's database (its pool's, given back after). */
  private usingSource<T>(plan: CopyPlan, work: (connection: PoolClient) => Promise<T>): Promise<T> {
    if (plan.source.database !== MAIN) return this.databases.using(plan.source.database, work);
    return usingConnection(this.db.pool, work);
  }

  /**
   * A chunk from a source in another database than the target's, read there in one transaction (SOURCE_READ): the
   * `limit`-th key after `after` (or, past the last such key, the range's greatest), then the rows up to it streamed
   * by `COPY (SELECT …) TO STDOUT` into `COPY … FROM STDIN` in `tx`, the target's (into a temporary table of the
   * written columns first, for an upsert's `INSERT … ON CONFLICT`), which commits the position with the rows; in the
   * binary format where the plan says so. The count and the position are the source's.
   */
  private async copyAcross(
    tx: PoolClient,
    plan: CopyPlan,
    after: string | null,
    to: string | null,
    limit: number,
  ): Promise<CopiedPart> {
    const key = quoteIdent(plan.key);
    const { where, values } = range(plan, after, to);
    const source = `${sourceName(plan)} ${where}`;
    const written = plan.columns.map(([column]) => quoteIdent(column)).join(', ');
    const target = targetName(plan);
    const into = plan.conflictKey ? 'pg_temp.batch_copy_rows' : target;
    const format = plan.binary ? ' (FORMAT binary)' : '';
    const counted = new CopiedRows(plan.binary);
    // no ROLLBACK where the COPY fails: it would wait behind the rows still streaming; the connection is closed instead
    const last = await this.usingSource(plan, async (reader) => {
      await reader.query(`BEGIN; ${SOURCE_READ}`).catch(raisedBySource);
      const [{ last }] = (
        await reader
          .query<{ last: string | null }>(
            `SELECT coalesce((SELECT ${key} FROM ${source} ORDER BY ${key} OFFSET $${values.length + 1} - 1 LIMIT 1),
                             (SELECT ${key} FROM ${source} ORDER BY ${key} DESC LIMIT 1))::text AS last`,
            [...values, limit],
          )
          .catch(raisedBySource)
      ).rows;
      if (last !== null) {
        // COPY takes no parameters: the bounds as literals of the key's type
        const bound = (value: string) => `${quoteLiteral(value)}::${plan.keyType}`;
        const rows =
          `SELECT ${plan.columns.map(([, column]) => quoteIdent(column)).join(', ')} FROM ${sourceName(plan)} ` +
          `WHERE ${after === null ? '' : `${key} > ${bound(after)} AND `}${key} <= ${bound(last)} ORDER BY ${key}`;
        if (plan.conflictKey)
          await tx.query(
            `CREATE TEMPORARY TABLE IF NOT EXISTS batch_copy_rows ON COMMIT DROP AS SELECT ${written} FROM ${target}
               WITH NO DATA; TRUNCATE ${into}`,
          );
        const read = reader.query(copyTo(`COPY (${rows}) TO STDOUT${format}`));
        const write = tx.query(copyFrom(`COPY ${into} (${written}) FROM STDIN${format}`));
        // whichever side failed first: the pipeline then destroys the other with the same error
        let failedFirst: 'source' | 'target' | null = null;
        read.once('error', () => (failedFirst ??= 'source'));
        write.once('error', () => (failedFirst ??= 'target'));
        await pipeline(read, counted, write).catch((error: unknown) => {
          if (failedFirst === 'source') raisedBySource(error);
          throw error;
        });
      }
      await reader.query('COMMIT').catch(raisedBySource);
      return last;
    });
    if (last === null) return { read: 0, written: 0, last: null };
    const read = counted.rows;
    if (!plan.conflictKey) return { read, written: read, last };
    const { rowCount } = await tx.query(
      `INSERT INTO ${target} (${written}) SELECT ${written} FROM ${into} ${upsertClause(plan)}`,
    );
    return { read, written: rowCount ?? 0, last };
  }

  /**
   * Up to `limit` rows after `after`, under a savepoint; when the target refuses them, the first half and then the
   * rest, down to single rows, each refused one skipped (skip policy).
   */
  private async copyPart(
    tx: PoolClient,
    plan: CopyPlan,
    step: StepRun,
    after: string | null,
    limit: number,
  ): Promise<CopiedPart> {
    const to = (step.context.to as string | null) ?? null;
    let copied: CopiedPart | null = null;
    let failure: unknown = null;
    await underSavepoint(
      tx,
      async () => {
        copied =
          plan.source.database === plan.target.database
            ? (await tx.query<CopiedPart>(chunkStatement(plan, after, to, limit))).rows[0]
            : await this.copyAcross(tx, plan, after, to, limit);
      },
      (error) => (failure = error),
    );
    if (copied !== null) {
      // rows read but not written: a trigger dropped them, or DO NOTHING met a conflict
      const { read, written } = copied as CopiedPart;
      step.counts.readCount += read;
      step.counts.writeCount += written;
      step.counts.filterCount += read - written;
      return copied;
    }
    if (isConnectionError(failure) || isConcurrencyConflict(failure)) throw failure;
    if (SOURCE_ERRORS.has(failure as object))
      throw new Error(`reading the source ${plan.source.name} failed: ${(failure as Error).message}`);
    step.counts.rollbackCount += 1;
    if (limit === 1) {
      const { where, values } = range(plan, after, to);
      const rows = await this.read<{ key: string }>(
        plan,
        `SELECT ${quoteIdent(plan.key)}::text AS key FROM ${sourceName(plan)} ${where} ORDER BY ${quoteIdent(plan.key)} LIMIT 1`,
        values,
        tx,
      );
      skip(step, failure, `${plan.key} = ${rows[0].key}`, {}, 'write');
      step.counts.readCount += 1;
      return { read: 1, written: 0, last: rows[0].key };
    }
    const half = Math.ceil(limit / 2);
    const first = await this.copyPart(tx, plan, step, after, half);
    if (first.read < half) return first;
    const rest = await this.copyPart(tx, plan, step, first.last, limit - half);
    return { read: first.read + rest.read, written: first.written + rest.written, last: rest.last ?? first.last };
  }
}

/**
 * The target columns written and the source columns they are read from: the mapping given, or every writable column
 * of the target that the source has by name.
 */
function mappedColumns(
  mapping: Record<string, string> | undefined,
  source: SourceTable,
  target: TargetTable,
): [string, string][] {
  if (mapping) {
    for (const [written, read] of Object.entries(mapping)) {
      if (!target.columns.has(written)) throw unknownColumn(target.name, written);
      if (target.columns.get(written)!.generatedAlways)
        throw invalidField('columns', `names ${written}, which is generated and cannot be written`);
      if (!source.columns.has(read)) throw unknownColumn(source.name, read);
    }
    return Object.entries(mapping);
  }
  const common = [...target.columns.values()]
    .filter((column) => !column.generatedAlways && source.columns.has(column.name))
    .map((column): [string, string] => [column.name, column.name]);
  if (common.length === 0)
    throw invalidField('columns', `are needed: ${source.name} and ${target.name} have no column of the same name`);
  return common;
}

function sourceName(plan: CopyPlan): string {
  return `${quoteIdent(plan.source.schema)}.${quoteIdent(plan.source.table)}`;
}

function targetName(plan: CopyPlan): string {
  return `${quoteIdent(plan.target.schema)}.${quoteIdent(plan.target.table)}`;
}

/**
 * The WHERE clause of a key range after `after` (exclusive; none: from the first) up to `to` (inclusive; none: to the
 * last), and its parameters, numbered from $1.
 */
function range(plan: CopyPlan, after: string | null, to: string | null): { where: string; values: string[] } {
  const key = quoteIdent(plan.key);
  const conditions: string[] = [];
  const values: string[] = [];
  for (const [bound, operator] of [
    [after, '>'],
    [to, '<='],
  ] as const) {
    if (bound === null) continue;
    values.push(bound);
    conditions.push(`${key} ${operator} $${values.length}::${plan.keyType}`);
  }
  return { where: conditions.length ? `WHERE ${conditions.join(' AND ')}` : '', values };
}

/**
 * A chunk's statement and its parameters: up to `limit` rows of the range in the source's order (index range scans,
 * however far the copy is), written by one INSERT; it answers the rows read and written and the last key read. The
 * count and the position come from the source, never from what the target returns: a trigger may drop or rewrite a
 * row, and the target may order the key otherwise (another collation). The `limit`-th key bounds the chunk; past the
 * last such key, the range's greatest key does, and the rows are counted. Sent as text: an unnamed statement is
 * planned for its bounds at each run.
 */
function chunkStatement(
  plan: CopyPlan,
  after: string | null,
  to: string | null,
  limit: number,
): { text: string; values: unknown[] } {
  const key = quoteIdent(plan.key);
  const { where, values } = range(plan, after, to);
  const source = `${sourceName(plan)} ${where}`;
  const read = plan.columns.map(([, column], i) => `${quoteIdent(column)} AS c${i}`).join(', ');
  const written = plan.columns.map(([column]) => quoteIdent(column)).join(', ');
  const upsert = upsertClause(plan);
  const target = targetName(plan);
  const last = `coalesce((SELECT k FROM nth), (SELECT ${key} FROM ${source} ORDER BY ${key} DESC LIMIT 1))`;
  const text = `
    WITH nth AS (SELECT ${key} AS k FROM ${source} ORDER BY ${key} OFFSET $${values.length + 1} - 1 LIMIT 1),
    written AS (
      INSERT INTO ${target} (${written})
      SELECT ${read} FROM ${source} ${where ? 'AND' : 'WHERE'} ${key} <= ${last} ORDER BY ${key} ${upsert}
      RETURNING 1)
    SELECT (CASE WHEN EXISTS (SELECT FROM nth) THEN $${values.length + 1} ELSE (SELECT count(*) FROM ${source}) END)::int
             AS read,
           (SELECT count(*) FROM written)::int AS written, ${last}::text AS last`;
  return { text, values: [...values, limit] };
}

/**
 * An upsert's `ON CONFLICT` clause (none for inserts). Its rows go in in order of the key, so that of two rows with one
 * conflict key the later one wins, as one at a time would.
 */
function upsertClause(plan: CopyPlan): string {
  if (!plan.conflictKey) return '';
  const updated = plan.columns.filter(([column]) => !plan.conflictKey!.includes(column));
  return `ON CONFLICT (${plan.conflictKey.map(quoteIdent).join(', ')}) ${
    updated.length
      ? `DO UPDATE SET ${updated.map(([c]) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}`
      : 'DO NOTHING'
  }`;
}

function unknownColumn(table: string, column: string): BatchError {
  return new BatchError('UNKNOWN_COLUMN', `${table} has no column ${column}`, { table, column });
}
