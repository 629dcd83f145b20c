import { isUtf8 } from 'node:buffer';
import type { PoolClient } from 'pg';
import type { TargetTable } from '../../interfaces/catalog.interfaces';
import { StepRun, underSavepoint } from '../jobs';
import { quoteIdent } from '../storage/database';
import { MAIN } from '../storage/named-databases';
import { LEDGER_SCHEMA } from '../storage/target-ledger';
import { isConcurrencyConflict, isConnectionError } from '../storage/database-error';
import { copyInto } from '../storage/pg-client';
import { copyLineOf, only, Records, Refusal, refuse, without } from './chunk-records';
import { doubtfulRecords, recordShape } from './doubtful-records';
import type { ImportPlan } from './import-plan';

/**
 * Records into a table by `COPY … FROM STDIN`, narrowed down to the records it refuses: a refusal that names its
 * record for certain has the rest sifted (the records whose text the target takes for certain kept, the others judged
 * in the database), one that names a line is taken record by record from there, one that names none is halved. Each
 * record refused is a Refusal; what went in is counted in the step's writeCount, or collected in `loaded`.
 */

/**
 * The records by `copy` at once; refused, sifted (sift), then narrowed (copyRecords). Returns the records copied
 * from (the sifted ones, where they were), which `loaded` indexes.
 */
export async function copyAll(
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
  const sifted = await sift(tx, plan, columns, refused, records, failure);
  const from = sifted ?? records;
  await copyRecords(tx, step, refused, copy, from, 0, from.bounds.length - 1, loaded, sifted ? undefined : failure);
  return from;
}

/**
 * COPY of records [from, to) under a savepoint. Refused at a line, the records before that line are copied again,
 * the record on it is tried alone (rejected when it is refused again: COPY counts some quoted newlines and not
 * others, so its line only says where to look), and the rest copied in turn; refused without a line, halved.
 * `loaded` collects what went in.
 */
async function copyRecords(
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
      await copyRecords(tx, step, refused, copy, records, start, middle, loaded);
      return copyRecords(tx, step, refused, copy, records, middle, to, loaded);
    }
    let suspect = start;
    while (suspect + 1 < to && records.lines[suspect + 1] - records.lines[start] < line) suspect += 1;
    if (suspect > start) await copyRecords(tx, step, refused, copy, records, start, suspect, loaded);
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
async function sift(
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
    plan.format.copyOptions(plan),
  );
  // bytes that are not UTF-8 are COPY's to judge: the tests read bytes
  const doubtful = isUtf8(records.data)
    ? doubtfulRecords(records.data, records.bounds, bad + 1, shape)
    : Array.from({ length: count - bad - 1 }, (_, k) => bad + 1 + k);
  const rejected = doubtful.length ? await refusedOf(tx, plan, columns, refused, only(records, doubtful)) : [];
  return without(records, [bad, ...rejected.map((k) => doubtful[k])]);
}

/**
 * The records the target refuses for their text, each a reject, found in the database: copied into a scratch table as
 * text, each COPY going on after the record it cannot read (a wrong number of fields, say), their values then read as
 * the target's columns read them (batch.refused_values). Returns their indexes, in order.
 */
async function refusedOf(
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
    const refusal = inColumnNames(await copyText(start, count), columns);
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
      `SELECT * FROM ${plan.target.database === MAIN ? 'batch' : LEDGER_SCHEMA}.refused_values('import_sift', $1::regclass, $2, 'import_sift_count')`,
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
 * A refusal of the scratch table's COPY in the data's own names: its fields c1 … cn are `columns`, which a reject
 * names (`missing data for column "state"`, not `"c4"`).
 */
function inColumnNames(refusal: unknown, columns: string[]): unknown {
  if (refusal === null) return null;
  const { code, message, where } = refusal as { code?: unknown; message?: unknown; where?: unknown };
  const name = (field: string) => columns[Number(field.slice(1)) - 1] ?? field;
  return {
    code,
    message: String(message ?? refusal).replace(/"(c\d+)"/g, (_, field: string) => `"${name(field)}"`),
    where: String(where ?? '').replace(
      /^(COPY [^,]*, line \d+, column )(c\d+):/m,
      (_, at: string, field: string) => `${at}${name(field)}:`,
    ),
  };
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
export async function attempt(tx: PoolClient, work: () => Promise<unknown>): Promise<unknown> {
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

/** COPY's options for the plan's records (RecordFormat.copyOptions). */
export function copyOptions(plan: ImportPlan): string {
  const { delimiter, quote, nullText } = plan.format.copyOptions(plan);
  const options = [`FORMAT csv`, `DELIMITER ${literal(delimiter)}`, `QUOTE ${literal(quote)}`];
  if (nullText !== null) options.push(`NULL ${literal(nullText)}`);
  return options.join(', ');
}

export function tableName(target: TargetTable): string {
  return `${quoteIdent(target.schema)}.${quoteIdent(target.table)}`;
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
