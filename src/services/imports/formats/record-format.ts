import type { TargetTable } from '../../../interfaces/catalog.interfaces';
import type { CopyRuns, Scan } from '../chunk-records';

/** What a format reads records with: an import's plan (ImportPlan) without its format. */
export interface ImportSettings {
  target: TargetTable;
  conflictKey: string[] | null;
  header: boolean;
  /** The columns of a CSV file without a header (the `columns` parameter, or every writable column in order). */
  columns: string[];
  delimiter: string;
  quote: string;
  /** The text of NULL in CSV; null: COPY's default, the empty unquoted field. */
  nullText: string | null;
}

/** How COPY reads the lines a format hands it: CSV with these settings. */
export interface CsvOptions {
  delimiter: string;
  quote: string;
  /** The text of NULL; null: COPY's default, the empty unquoted field. */
  nullText: string | null;
}

/**
 * A format of uploaded data sets: how its records are found in the bytes, checked at upload, and handed to COPY. An
 * import knows a format only through this; another format is one more implementation, listed in FORMATS.
 */
export interface RecordFormat {
  /** The `format` parameter's value. */
  readonly name: string;
  /** The content types that mean this format when an upload names none. */
  readonly contentTypes: readonly string[];
  /** The byte that quotes newlines inside a record (CSV's quote), for the record scanner; null: a newline ends one. */
  quote(plan: ImportSettings): number | null;
  /** How COPY reads the lines that toCopy makes. */
  copyOptions(plan: ImportSettings): CsvOptions;
  /** Checks at launch what the plan says of the records: the columns given for a CSV file without a header. */
  checkPlan(plan: ImportSettings): void;
  /** Whether the data starts with a record that names its columns (a CSV header), read before the first chunk. */
  readsHeader(plan: ImportSettings): boolean;
  /** The columns a header names, checked against the target (UNKNOWN_COLUMN, VALIDATION_FAILED). */
  headerColumns(plan: ImportSettings, text: string): string[];
  /** Whether an upload's first record is checked before the rest is stored (checkFirst). */
  checksFirst(plan: ImportSettings): boolean;
  /**
   * Checks an upload's first record against the target before the rest is stored: a header's columns, or an NDJSON
   * record's keys. False when `text` is no record (a blank line), to check the next one; true once checked.
   */
  checkFirst(plan: ImportSettings, text: string): boolean;
  /** Whether an upload whose first record is longer than the longest record taken is refused (a CSV header). */
  readonly refusesLongFirst: boolean;
  /**
   * The first `count` records of a scan of the bytes read from `base`, as COPY takes them; `columns` are the header's,
   * where the format reads one. Records it cannot read are refused, each with where it came from.
   */
  toCopy(
    scan: Scan,
    count: number,
    base: number,
    plan: ImportSettings,
    columns: string[] | undefined,
  ): Promise<CopyRuns>;
}
