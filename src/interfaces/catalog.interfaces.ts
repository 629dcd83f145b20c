/** A column of a target table, as the live catalog describes it. */
export interface TargetColumn {
  name: string;
  /** The type as SQL spells it (`format_type`), used for casts: `numeric(10,2)`, `character varying(20)`, `integer[]`. */
  sqlType: string;
  /** The type without its modifier, for the writer's casts: the assignment to the column then applies length and
   *  precision exactly as a one-row INSERT or UPDATE would (an explicit cast to `varchar(3)` would truncate instead). */
  castType: string;
  /** The base type's name (`int4`, `numeric`, `varchar`, …); for arrays, the element type's. */
  baseType: string;
  isArray: boolean;
  /** Type modifier: length for char types, precision/scale for numeric; -1 when none. */
  typmod: number;
  notNull: boolean;
  hasDefault: boolean;
  /** GENERATED ALWAYS (identity or stored expression): cannot be written. */
  generatedAlways: boolean;
  enumLabels: string[] | null;
}

export interface TargetTable {
  /** Canonical `schema.table`, `database:schema.table` in a database other than the service's own. */
  name: string;
  /** `main` (the service's own) or a name of BATCH_DATABASES. */
  database: string;
  schema: string;
  table: string;
  columns: Map<string, TargetColumn>;
  primaryKey: string[] | null;
  /** Unique keys usable to address one row: the primary key first, then unique constraints and indexes. */
  uniqueKeys: string[][];
  /**
   * User triggers, a foreign key to itself, an exclusion constraint, or a partial or expression unique index:
   * multi-row statements could differ from one-row statements (statement triggers fire once, self-references
   * are checked at statement end, the planner cannot see those collisions), so each operation of such a table
   * gets a statement of its own (still inside the chunk's transaction).
   */
  oneRowStatements: boolean;
  /**
   * Neither rules (which COPY ignores), row security (which refuses COPY) nor anything that makes oneRowStatements:
   * `COPY` of rows in order does what an `INSERT … SELECT` of them in that order does.
   */
  copyIsInsert: boolean;
  /**
   * Neither check constraints, foreign keys, stored generated columns, row security, rules, partitions, inheriting
   * tables nor anything that makes oneRowStatements: nothing sees or checks a row's values between two of its changes
   * in one statement's time, so a chunk's successive updates and increments of a row may be applied as one change (see
   * foldedStatement).
   */
  foldsRowChanges: boolean;
}

/** A table or view a `copy` job may read (in BATCH_SOURCE_SCHEMAS), as the live catalog describes it. */
export interface SourceTable {
  /** Canonical `schema.table`, `database:schema.table` in a database other than the service's own. */
  name: string;
  /** `main` (the service's own) or a name of BATCH_DATABASES. */
  database: string;
  schema: string;
  table: string;
  /** Each column's type without its modifier (`format_type`), for casts, in the table's order. */
  columns: Map<string, string>;
  /** The single column of its primary key; null for a view, or a key of several columns. */
  key: string | null;
  /** The columns that are NOT NULL and unique by an index on the column alone (none for a view). */
  uniqueKeys: string[];
  /** A view: the catalog cannot say which of its columns are unique. */
  isView: boolean;
}
