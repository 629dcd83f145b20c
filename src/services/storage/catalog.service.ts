import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { AppConfig } from '../../config/app-config';
import type { SourceTable, TargetTable } from '../../interfaces/catalog.interfaces';
import { Database } from './database';
import { BatchError } from '../batch-error';
import { databaseOf, MAIN, NamedDatabases } from './named-databases';
import { isConnectionError } from './database-error';

/**
 * How long another database's catalog may take to read (a few small queries, milliseconds on a server that answers)
 * before it counts as not answering, as a connection that could not be opened does.
 */
const CATALOG_TIMEOUT_MS = 5000;

interface ColumnRow {
  schema: string;
  table: string;
  column: string;
  sql_type: string;
  cast_type: string;
  base_type: string;
  is_array: boolean;
  typmod: number;
  not_null: boolean;
  has_default: boolean;
  generated_always: boolean;
  enum_labels: string[] | null;
}

interface SourceRow {
  schema: string;
  table: string;
  column: string;
  cast_type: string;
  key: string | null;
  unique_keys: string[];
  is_view: boolean;
}

interface KeyRow {
  schema: string;
  table: string;
  primary: boolean;
  columns: string[];
}

/**
 * A column's type as a cast names it (the column `a`, its type `t`): without a modifier, "character" and "bit" mean
 * length 1, so those cast to the unbounded bpchar and varbit instead. batch.typed_stage (typed-inserts.sql) names the
 * types of its stages the same way, and the writer reads a stage only where the two agree.
 */
const CAST_TYPE = `CASE t.typname WHEN 'bpchar' THEN 'bpchar' WHEN '_bpchar' THEN 'bpchar[]' WHEN 'bit' THEN 'varbit'
                                  WHEN '_bit' THEN 'varbit[]' ELSE format_type(a.atttypid, NULL) END`;

const COLUMNS_SQL = `
  SELECT n.nspname AS schema, c.relname AS table, a.attname AS column,
         format_type(a.atttypid, a.atttypmod) AS sql_type, ${CAST_TYPE} AS cast_type,
         bt.typname AS base_type, (et.oid IS NOT NULL) AS is_array,
         -- a domain's modifier and NOT NULL are the column's too (its CHECK constraints are left to the database)
         coalesce(nullif(a.atttypmod, -1), nullif(et.typtypmod, -1), nullif(t.typtypmod, -1), -1) AS typmod,
         (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull)) AS not_null,
         (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS has_default,
         (a.attidentity = 'a' OR a.attgenerated <> '') AS generated_always,
         CASE WHEN bt.typtype = 'e'
              THEN ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = bt.oid ORDER BY e.enumsortorder) END AS enum_labels
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type et ON t.typcategory = 'A' AND et.oid = t.typelem
    JOIN pg_type bt ON bt.oid = COALESCE(NULLIF(COALESCE(et.typbasetype, t.typbasetype), 0), et.oid, t.oid)
   WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) AND n.nspname NOT IN ('batch', 'batch_ledger')
   ORDER BY n.nspname, c.relname, a.attnum`;

const TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS table,
         EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal)
      OR EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conrelid = c.oid AND f.confrelid = c.oid)
      OR EXISTS (SELECT 1 FROM pg_constraint x WHERE x.contype = 'x' AND x.conrelid = c.oid)
      OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND (i.indpred IS NOT NULL OR i.indexprs IS NOT NULL))
         AS one_row_statements,
         NOT c.relhasrules AND NOT c.relrowsecurity AS copy_is_insert,
         c.relkind = 'r' AND NOT c.relhassubclass AND NOT c.relrowsecurity AND NOT c.relhasrules
     AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype IN ('c', 'f'))
     AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND a.attgenerated <> '')
         AS folds_row_changes
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1) AND n.nspname NOT IN ('batch', 'batch_ledger')`;

const KEYS_SQL = `
  SELECT n.nspname AS schema, c.relname AS table, i.indisprimary AS primary,
         ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
    FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid
     AND c.relkind IN ('r', 'p') AND n.nspname = ANY($1) AND n.nspname NOT IN ('batch', 'batch_ledger')
   ORDER BY i.indisprimary DESC, i.indexrelid`;

/**
 * Whether a table of the target schemas ($1) named $3 (in schema $2, or any of them) has every column of $4: what a
 * miss asks before the whole catalog is read again for it.
 */
const FOUND_SQL = `
  SELECT EXISTS (
    SELECT FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY ($1) AND n.nspname NOT IN ('batch', 'batch_ledger')
       AND c.relname = $3 AND ($2::text IS NULL OR n.nspname = $2)
       AND NOT EXISTS (SELECT FROM unnest($4::text[]) w(name)
                        WHERE NOT EXISTS (SELECT FROM pg_attribute a
                                           WHERE a.attrelid = c.oid AND a.attname = w.name AND a.attnum > 0
                                             AND NOT a.attisdropped))) AS found`;

/**
 * A table, view or materialized view of the source schemas ($1) named $3 (in schema $2, or the first of them that has
 * it), with its columns, the column of its primary key when that has one, and the columns that are NOT NULL and
 * unique by an index of their own (whole, on the column itself): the keys it can be read in order of.
 */
const SOURCE_SQL = `
  SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, ${CAST_TYPE} AS cast_type,
         (SELECT k.attname FROM pg_index i JOIN pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = i.indkey[0]
           WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1) AS key,
         ARRAY(SELECT k.attname::text FROM pg_index i
                 JOIN pg_attribute k ON k.attrelid = i.indrelid AND k.attnum = i.indkey[0]
                WHERE i.indrelid = c.oid AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
                  AND i.indexprs IS NULL AND i.indisvalid AND k.attnotnull) AS unique_keys,
         c.relkind = 'v' AS is_view
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type t ON t.oid = a.atttypid
   WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname = ANY ($1) AND n.nspname NOT IN ('batch', 'batch_ledger')
     AND c.relname = $3 AND ($2::text IS NULL OR n.nspname = $2)
   ORDER BY array_position($1, n.nspname::text), a.attnum`;

/**
 * The target tables, discovered from the live database catalog of the allowed schemas.
 * Cached for BATCH_CATALOG_TTL ms; a miss reloads at once where the database now has what was missed, so that tables
 * and columns created after start are found, and a caller naming what is not there costs one small query, not a read
 * of the whole catalog.
 * Loaded before the process says it is ready, so that the first requests and the first chunk do not wait for it.
 */
@Injectable()
export class CatalogService implements OnApplicationBootstrap {
  private readonly logger = new Logger(CatalogService.name);
  /** Each database's tables by `schema.table`, as last read. */
  private readonly tables = new Map<string, Map<string, TargetTable>>();
  /** When each database's catalog was last read (or found unreadable), and its read in flight. */
  private readonly loadedAt = new Map<string, number>();
  private readonly loading = new Map<string, Promise<void>>();

  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
    private readonly databases: NamedDatabases,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // not fatal: the first lookup loads it again
    await this.reload().catch((error: Error) => this.logger.warn(`catalog not loaded at start: ${error.message}`));
  }

  /**
   * Resolves `[database:][schema.]table` to a target, or null when there is none in that database's target schemas. An
   * unknown database is UNKNOWN_TARGET; one whose catalog was never read (it has not answered yet) UNAVAILABLE.
   */
  async find(name: string): Promise<TargetTable | null> {
    const { database, local } = databaseOf(name);
    await this.ensureFresh(database);
    const found = this.lookup(name);
    if (found || !(await this.nowHas(database, local, []))) return found;
    await this.reload(database);
    return this.lookup(name);
  }

  /** Like find, but reloads when a column is missing (it may have been added since the last load). */
  async findWithColumns(name: string, columns: string[]): Promise<TargetTable | null> {
    const target = await this.find(name);
    const missing = target ? columns.filter((column) => !target.columns.has(column)) : [];
    if (missing.length === 0 || !(await this.nowHas(target!.database, `${target!.schema}.${target!.table}`, missing)))
      return target;
    await this.reload(target!.database);
    return this.lookup(name);
  }

  /**
   * Whether `database` has a target table `[schema.]table` (`local`) with `columns` now, as FOUND_SQL asks; true where
   * it cannot tell (the database does not answer): the reload decides then, as it does.
   */
  private async nowHas(database: string, local: string, columns: string[]): Promise<boolean> {
    if (database !== MAIN && !this.databases.get(database)) return true; // unknown: lookup says so
    const [schema, table] = schemaAndTable(local);
    const params = [this.targetSchemas(database), schema, table, columns];
    try {
      const [row] =
        database === MAIN
          ? await this.db.query<{ found: boolean }>(FOUND_SQL, params)
          : await this.databases.query<{ found: boolean }>(database, FOUND_SQL, params, CATALOG_TIMEOUT_MS);
      return row.found;
    } catch {
      return true;
    }
  }

  /**
   * A table or view a copy may read, read from the catalog as it is now: `[database:][schema.]table`, in the schemas
   * of BATCH_SOURCE_SCHEMAS (the service's own database, `main`) or of its database's `sourceSchemas`; null when there
   * is none there. An unknown database is UNKNOWN_TARGET, named.
   */
  async source(name: string): Promise<SourceTable | null> {
    const { database, local } = databaseOf(name);
    const named = database === MAIN ? null : this.databases.get(database);
    if (database !== MAIN && !named) throw unknownDatabase(database);
    const [schema, table] = schemaAndTable(local);
    const params = [named?.sourceSchemas ?? this.config.sourceSchemas, schema, table];
    const rows = named
      ? await this.databases.query<SourceRow>(database, SOURCE_SQL, params, CATALOG_TIMEOUT_MS)
      : await this.db.query<SourceRow>(SOURCE_SQL, params);
    if (rows.length === 0) return null;
    const found = rows.filter((row) => row.schema === rows[0].schema);
    return {
      name: `${database === MAIN ? '' : `${database}:`}${rows[0].schema}.${rows[0].table}`,
      database,
      schema: rows[0].schema,
      table: rows[0].table,
      columns: new Map(found.map((row) => [row.column, row.cast_type])),
      key: rows[0].key,
      uniqueKeys: rows[0].unique_keys,
      isView: rows[0].is_view,
    };
  }

  async list(): Promise<TargetTable[]> {
    await Promise.all(this.names().map((database) => this.ensureFresh(database)));
    return [...this.tables.values()].flatMap((tables) => [...tables.values()]);
  }

  private lookup(name: string): TargetTable | null {
    const { database, local } = databaseOf(name);
    const tables = this.tables.get(database);
    if (!tables) {
      if (database !== MAIN && !this.databases.get(database)) throw unknownDatabase(database);
      if (database !== MAIN)
        throw new BatchError('UNAVAILABLE', `Database "${database}" has not answered yet; try again later`, {
          database,
        });
      return null;
    }
    const direct = tables.get(local);
    if (direct) return direct;
    if (local.includes('.')) return null;
    for (const schema of this.targetSchemas(database)) {
      const table = tables.get(`${schema}.${local}`);
      if (table) return table;
    }
    return null;
  }

  private targetSchemas(database: string): readonly string[] {
    return database === MAIN ? this.config.targetSchemas : this.databases.get(database)!.targetSchemas;
  }

  /** `main` and the databases of BATCH_DATABASES. */
  private names(): string[] {
    return [MAIN, ...this.databases.all().map((database) => database.name)];
  }

  private async ensureFresh(database: string): Promise<void> {
    if (Date.now() - (this.loadedAt.get(database) ?? 0) > this.config.catalogTtlMs) await this.reload(database);
  }

  /**
   * Reads the catalog of `database`, or of every database when none is given: each on its own, concurrent callers
   * sharing one read of it, so that no database's lookups wait for another's (one that does not answer, say).
   */
  async reload(database?: string): Promise<void> {
    if (database === undefined) {
      await Promise.all(this.names().map((name) => this.reload(name)));
      return;
    }
    if (database !== MAIN && !this.databases.get(database)) return; // unknown: lookup says so
    let loading = this.loading.get(database);
    if (!loading) {
      loading = this.load(database).finally(() => this.loading.delete(database));
      this.loading.set(database, loading);
    }
    return loading;
  }

  /**
   * Reads one database's catalog. Another database that does not answer within CATALOG_TIMEOUT_MS (its connection is
   * then closed), or that its last check found down, keeps the tables last read from it, so that operations for it are
   * still checked while it is away, without waiting for it each time.
   */
  private async load(database: string): Promise<void> {
    if (database === MAIN) {
      this.tables.set(MAIN, await this.loadFrom(MAIN, (sql, params) => this.db.query(sql, params)));
    } else if (this.databases.get(database)!.up !== false) {
      const query = <T>(sql: string, params: unknown[]) =>
        this.databases.query<T>(database, sql, params, CATALOG_TIMEOUT_MS);
      const read = await this.loadFrom(database, query).catch((error: Error) => {
        this.logger.warn(`catalog of database ${database} not read: ${error.message}`);
        if (isConnectionError(error)) this.databases.markDown(database, error);
        return null;
      });
      if (read) this.tables.set(database, read);
    }
    this.loadedAt.set(database, Date.now());
  }

  private async loadFrom(
    database: string,
    query: <T>(sql: string, params: unknown[]) => Promise<T[]>,
  ): Promise<Map<string, TargetTable>> {
    const schemas = this.targetSchemas(database);
    const [columns, keys, flags] = await Promise.all([
      query<ColumnRow>(COLUMNS_SQL, [schemas]),
      query<KeyRow>(KEYS_SQL, [schemas]),
      query<{
        schema: string;
        table: string;
        one_row_statements: boolean;
        copy_is_insert: boolean;
        folds_row_changes: boolean;
      }>(TABLES_SQL, [schemas]),
    ]);
    const tables = new Map<string, TargetTable>();
    for (const row of columns) {
      const local = `${row.schema}.${row.table}`;
      let table = tables.get(local);
      if (!table) {
        table = {
          name: targetName(database, local),
          database,
          schema: row.schema,
          table: row.table,
          columns: new Map(),
          primaryKey: null,
          uniqueKeys: [],
          oneRowStatements: false,
          copyIsInsert: false,
          foldsRowChanges: false,
        };
        tables.set(local, table);
      }
      table.columns.set(row.column, {
        name: row.column,
        sqlType: row.sql_type,
        castType: row.cast_type,
        baseType: row.base_type,
        isArray: row.is_array,
        typmod: row.typmod,
        notNull: row.not_null,
        hasDefault: row.has_default,
        generatedAlways: row.generated_always,
        enumLabels: row.enum_labels,
      });
    }
    for (const key of keys) {
      const table = tables.get(`${key.schema}.${key.table}`);
      if (!table) continue;
      if (key.primary) table.primaryKey = key.columns;
      if (!table.uniqueKeys.some((k) => sameColumns(k, key.columns))) table.uniqueKeys.push(key.columns);
    }
    for (const flag of flags) {
      const table = tables.get(`${flag.schema}.${flag.table}`);
      if (!table) continue;
      table.oneRowStatements = flag.one_row_statements;
      table.copyIsInsert = flag.copy_is_insert && !flag.one_row_statements;
      table.foldsRowChanges = flag.folds_row_changes && !flag.one_row_statements;
    }
    return tables;
  }
}

/**
 * A table's name in full: `database:schema.table`, or `schema.table` in `main`, but for a name that holds a colon, which
 * `main:` keeps from being read as a database's name.
 */
export function targetName(database: string, local: string): string {
  return database === MAIN && !local.includes(':') ? local : `${database}:${local}`;
}

function unknownDatabase(database: string): BatchError {
  return new BatchError('UNKNOWN_TARGET', `Unknown database "${database}" (BATCH_DATABASES names no such database)`, {
    database,
  });
}

/** `schema.table` as its schema and table; a bare `table` has no schema (the first of the schemas that has it). */
function schemaAndTable(local: string): [string | null, string] {
  const dot = local.indexOf('.');
  return dot < 0 ? [null, local] : [local.slice(0, dot), local.slice(dot + 1)];
}

/** Whether the table, as loaded, has every one of these columns. */
export function hasColumns(table: TargetTable, columns: string[]): boolean {
  return columns.every((c) => table.columns.has(c));
}

/** True when both lists name the same columns, in any order. */
export function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((c) => b.includes(c));
}
