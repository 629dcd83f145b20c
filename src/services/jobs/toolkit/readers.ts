import { Client, type QueryArrayConfig, type QueryArrayResult, type QueryResultRow } from 'pg';
import { quoteIdent } from '../../storage/database';
import type { Database } from '../../storage/database';
import type { ItemReader, StepRun } from '../job-definition';

/** Values of a reader's query ($1, $2, …), worked out from the step: its job's parameters, most often. */
export type QueryParameters = (step: StepRun) => unknown[];

export interface PagingReaderOptions {
  /** A table or view (`table` or `schema.table`), read in the order of `key`… */
  table?: string;
  /** …with this condition on its rows (its own `$1`, `$2`, … bound from `params`); */
  where?: string;
  /** or a query of any shape whose rows have the key's columns (wrapped as a subquery: no ORDER BY or LIMIT of its own). */
  query?: string;
  params?: QueryParameters;
  /** The columns that are unique and never NULL in the rows read: the order, and the position saved. */
  key: string | string[];
  /** The columns read (of a table; by default all); the key's are read whether named or not. */
  columns?: string[];
  /**
   * The service's database, to read each next page from while the chunk before is written (see pagingReader): the
   * process parses rows while the database writes, where it would otherwise wait.
   */
  readAhead?: Database;
}

/**
 * Spring Batch's paging reader, keyset-paged: each chunk reads the `count` rows after the last key read, in key order,
 * and saves that key (as text, read back by the key's own type: no precision lost) in `step.context.lastKey`, so a
 * restart goes on after the last committed chunk. The key must be unique and never NULL, or rows are read twice or
 * never. Each page is one indexed query: no cost grows with the position.
 *
 * With `readAhead`, once a chunk's page is read in full, the page after it is read on another connection of the pool
 * and kept for the next chunk, which takes it if it starts from that key (else, after a rollback or a retry, it reads
 * its page as without). Its snapshot is its own, taken when the pool runs the query: usually before the chunk commits,
 * after it where the pool must first open a connection or is busy. So a step whose writer changes the rows after its
 * page, in the table it reads, must not read ahead (it would see those changes or not, by timing); a step that writes
 * elsewhere, or the rows it read, may.
 */
export function pagingReader<T extends QueryResultRow = Record<string, unknown>>(
  options: PagingReaderOptions,
): ItemReader<T> {
  const key = typeof options.key === 'string' ? [options.key] : options.key;
  if (key.length === 0) throw new Error('pagingReader needs a key');
  if ((options.table === undefined) === (options.query === undefined))
    throw new Error('pagingReader reads a table or a query, one of them');
  // the key's columns are read too, whether `columns` names them or not: the position is taken from them
  const columns = options.columns && [...new Set([...options.columns, ...key])];
  const source =
    options.table !== undefined
      ? `(SELECT ${columns?.map(quoteIdent).join(', ') ?? '*'} FROM ${qualified(options.table)}` +
        `${options.where ? ` WHERE ${options.where}` : ''}) page`
      : `(${options.query}) page`;
  const keyColumns = key.map((column) => `page.${quoteIdent(column)}`).join(', ');
  const keyTexts = key.map((column, i) => `page.${quoteIdent(column)}::text AS ${hidden(i)}`).join(', ');
  // rows as arrays, made objects here without the key's texts: a property deleted from an object would leave it in
  // V8's slow dictionary mode, for the processor and the writer too
  const page = (params: unknown[], count: number, last: string[] | undefined): QueryArrayConfig => ({
    text:
      `SELECT page.*, ${keyTexts} FROM ${source}` +
      `${last ? ` WHERE (${keyColumns}) > (${last.map((_, i) => `$${params.length + 2 + i}`).join(', ')})` : ''}` +
      ` ORDER BY ${keyColumns} LIMIT $${params.length + 1}`,
    values: [...params, count, ...(last ?? [])],
    rowMode: 'array',
  });
  const pagesAhead = new WeakMap<StepRun, { position: string; rows: Promise<QueryArrayResult | null> }>();
  return async (tx, step, count) => {
    const params = options.params?.(step) ?? [];
    const last = step.context.lastKey as string[] | undefined;
    const ahead = pagesAhead.get(step);
    pagesAhead.delete(step);
    const position = JSON.stringify([params, count, last ?? null]);
    const result = (ahead?.position === position && (await ahead.rows)) || (await tx.query(page(params, count, last)));
    const names = result.fields.slice(0, result.fields.length - key.length).map((field) => field.name);
    const { rows } = result;
    if (rows.length > 0) {
      const next = rows[rows.length - 1].slice(names.length) as string[];
      step.context.lastKey = next;
      if (options.readAhead && rows.length === count) {
        // a page that fails to read here is read again by the chunk that needs it, in its own transaction
        const read = options.readAhead.pool.query(page(params, count, next)).catch(() => null);
        pagesAhead.set(step, { position: JSON.stringify([params, count, next]), rows: read });
      }
    }
    return rows.map((row) => {
      const item: Record<string, unknown> = {};
      for (let i = 0; i < names.length; i++) item[names[i]] = row[i];
      return item as T;
    });
  };
}

/** A column of the reader's own, holding the key's text; taken off the rows before they are items. */
function hidden(i: number): string {
  return `__batch_key_${i}`;
}

function qualified(table: string): string {
  return table.split('.').map(quoteIdent).join('.');
}

export interface CursorReaderOptions {
  /** Where the reader opens its connection of its own (the service's database, with the pool's settings). */
  db: Database;
  /** The query, whose ORDER BY must give its rows one order, the same at every run (see cursorReader). */
  query: string;
  params?: QueryParameters;
  /** A cursor not read for this long is closed (its connection too); the next chunk opens it again. */
  idleMs?: number;
}

/**
 * Spring Batch's cursor reader, for a query that has no key to page on: one server-side cursor, streamed across the
 * step's chunks, on a connection of the reader's own (in a read-only REPEATABLE READ transaction, so the rows are
 * the ones of one snapshot). The count of rows read is saved with each chunk in `step.context.cursorRead`.
 *
 * The restart rule: a cursor cannot outlive its connection, so after a restart, a chunk rolled back, another worker
 * taking the step over, or the cursor closed for being idle, the query is run again and the rows already committed
 * are skipped by that count (MOVE, on the server: they are not sent). That is right only when the query's ORDER BY
 * is a total order (ending with something unique) and the rows before the position have not changed since: the query
 * of a step that deletes or updates what it reads must page by a key instead (pagingReader).
 */
export function cursorReader<T extends QueryResultRow = Record<string, unknown>>(
  options: CursorReaderOptions,
): ItemReader<T> {
  const cursors = new WeakMap<StepRun, OpenCursor>();
  return async (_tx, step, count) => {
    const read = Number(step.context.cursorRead ?? 0);
    let cursor = cursors.get(step);
    if (cursor && (cursor.closed || cursor.read !== read)) {
      await cursor.close();
      cursor = undefined;
    }
    if (!cursor) {
      cursor = await OpenCursor.open(options, step, read);
      cursors.set(step, cursor);
    }
    const rows = await cursor.fetch<T>(count);
    step.context.cursorRead = read + rows.length;
    if (rows.length < count) {
      cursors.delete(step);
      await cursor.close();
    }
    return rows;
  };
}

/** A cursor on a connection of its own, `read` rows into its query, closed when it stays idle for `idleMs`. */
class OpenCursor {
  private timer: NodeJS.Timeout | null = null;
  closed = false;

  private constructor(
    private readonly client: Client,
    public read: number,
    private readonly idleMs: number,
  ) {}

  static async open(options: CursorReaderOptions, step: StepRun, read: number): Promise<OpenCursor> {
    const client = new Client(options.db.pool.options);
    await client.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`DECLARE batch_reader NO SCROLL CURSOR FOR ${options.query}`, options.params?.(step) ?? []);
      if (read > 0) await client.query(`MOVE FORWARD ${read} FROM batch_reader`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    const cursor = new OpenCursor(client, read, options.idleMs ?? 60_000);
    client.on('error', () => void cursor.close());
    return cursor;
  }

  async fetch<T extends QueryResultRow>(count: number): Promise<T[]> {
    if (this.timer) clearTimeout(this.timer);
    const { rows } = await this.client.query<T>(`FETCH FORWARD ${Math.trunc(count)} FROM batch_reader`);
    this.read += rows.length;
    this.timer = setTimeout(() => void this.close(), this.idleMs).unref();
    return rows;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.client.end().catch(() => undefined);
  }
}
