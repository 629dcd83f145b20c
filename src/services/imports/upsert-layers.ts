import type { PoolClient } from 'pg';
import type { StepRun } from '../jobs';
import { quoteIdent } from '../storage/database';
import { Records, Refusal, refuse } from './chunk-records';
import { attempt, copyAll, tableName } from './copy-loading';
import type { ImportPlan } from './import-plan';
import { RecordProblem } from './records';

/**
 * Records upserted into the target: copied into a temporary table (copyAll: the ones COPY refuses narrowed down to),
 * then written with `INSERT … SELECT … ON CONFLICT`, in one statement where it can go so, else in layers: the n-th
 * record of each conflict key in layer n, each layer in order of the records, so that every record is applied (or
 * refused) after the ones of its key before it, as one at a time would.
 */
export async function upsertRecords(
  tx: PoolClient,
  plan: ImportPlan,
  step: StepRun,
  refused: Refusal[],
  columns: string[],
  records: Records,
  copyStatement: (table: string) => string,
): Promise<void> {
  const unkeyed = plan.conflictKey!.find((name) => !columns.includes(name));
  if (unkeyed) {
    // NDJSON records whose keys leave out the conflict key: as the upsert of each would be refused, each a reject
    const problem = new RecordProblem(
      'VALIDATION_FAILED',
      `the record has no ${unkeyed}, of the conflict key`,
      unkeyed,
    );
    for (let i = 0; i < records.bounds.length - 1; i++) refuse(refused, records, i, problem);
    return;
  }
  const list = columns.map(quoteIdent).join(', ');
  await tx.query(
    `CREATE TEMP TABLE IF NOT EXISTS import_rows ON COMMIT DROP AS SELECT ${list} FROM ${tableName(plan.target)} WITH NO DATA;
       ALTER TABLE import_rows ADD COLUMN ord bigint GENERATED ALWAYS AS IDENTITY`,
  );
  const loaded: number[] = [];
  records = await copyAll(tx, plan, step, refused, columns, copyStatement('import_rows'), records, loaded);
  if (await upsertAll(tx, plan, columns)) step.counts.writeCount += loaded.length;
  else {
    const key = plan.conflictKey!.map(quoteIdent).join(', ');
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
    for (const layer of layers) await upsertRows(tx, step, refused, upsert, records, layer, 0, layer.ords.length);
  }
  await tx.query(`DROP TABLE import_rows`);
}

/**
 * The copied rows in one statement, as most data sets can go: true when it went in; false when it must go in layers,
 * or was refused (then halved down to the rows at fault). Two rows of one conflict key need layers only where they
 * update: PostgreSQL refuses a statement that would change one row twice (21000); with nothing but key columns to
 * write, rows of one key are the same row, and the one statement leaves what the layers would.
 */
async function upsertAll(tx: PoolClient, plan: ImportPlan, columns: string[]): Promise<boolean> {
  const upsert = upsertStatement(plan, columns, 'true');
  return (await attempt(tx, () => tx.query(upsert))) === null;
}

/** The copied rows [from, to) of a layer written to the target; refused, halved down to the rows at fault. */
async function upsertRows(
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
  await upsertRows(tx, step, refused, upsert, records, layer, from, middle);
  await upsertRows(tx, step, refused, upsert, records, layer, middle, to);
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
