import type { PoolClient } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import type { ChunkPlan, ClaimedOperation, OperationOutcome, StatementPlan } from '../../interfaces/chunk.interfaces';
import { type Database, quoteIdent, quoteLiteral } from '../storage/database';
import { oneRun, qualifiedName } from './target-sql';
import { operationCount, runParams } from '../storage/id-runs';
import { usingConnection } from '../storage/pg-client';
import { LEDGER_SCHEMA } from '../storage/target-ledger';
import { binaryCopies, SERVER_MAJOR_VERSION } from '../copy/copied-rows';
import type { StepRecord } from './chunk-repository';

/**
 * How a chunk for a target in another database gets there: its operations' values staged in a temporary table of
 * the target's connection, which its statements read in place of batch.operations, with the writer's functions of
 * that database's batch_ledger.
 */
const STAGED = 'pg_temp.batch_chunk_operations';
const STAGE =
  'CREATE TEMPORARY TABLE IF NOT EXISTS batch_chunk_operations ' +
  '(id bigint PRIMARY KEY, priority smallint NOT NULL, row_values jsonb, row_key jsonb) ON COMMIT DELETE ROWS';

/** The plan's statements as they run in the target's database, over the staged operations. */
export function planElsewhere(plan: ChunkPlan): ChunkPlan {
  return { ...plan, statements: plan.statements.map((s) => ({ ...s, source: STAGED, helpers: LEDGER_SCHEMA })) };
}

/**
 * Copies the chunk's operations from the queue (`COPY … TO STDOUT` of their rows, by runs of ids) into the staging
 * table of `target`, a connection in the transaction that applies them.
 */
export async function stageOperations(db: Database, target: PoolClient, chunk: ClaimedOperation[]): Promise<void> {
  await target.query(STAGE);
  const rows = `SELECT o.id, o.priority, o.row_values, o.row_key FROM ${operationsOf(chunk)}`;
  await copyFromQueue(db, target, rows, `COPY ${STAGED} (id, priority, row_values, row_key) FROM STDIN`);
}

/** The operations as rows `o` of the queue, by runs of ids (COPY takes no parameters: array literals of numbers). */
function operationsOf(operations: ClaimedOperation[]): string {
  const [firsts, lasts] = runParams(operations);
  return (
    `unnest('${firsts}'::bigint[], '${lasts}'::bigint[]) AS r(first_id, last_id) ` +
    `JOIN batch.operations o ON o.id BETWEEN r.first_id AND r.last_id`
  );
}

/**
 * A chunk of inserts alone, into tables where COPY is an INSERT (copyIsInsert), goes in by `COPY` of the values' text
 * (copyInserts), each column's text read by its type's input as the statement's cast and assignment would read it.
 */
export function copiesAsInserts(plan: ChunkPlan): boolean {
  return (
    plan.filtered.length === 0 &&
    plan.statements.every((statement) => statement.type === 'insert' && statement.table.copyIsInsert)
  );
}

/**
 * An insert statement's operations streamed from the queue into its table by `COPY`, in the statement's order
 * (`priority DESC, id`: defaults are drawn in it): from their typed rows where `stage` (StatementApplier.stageToCopy)
 * has one for each of them (typedRows), else each column's value as text (JSON as its text, arrays as array literals,
 * SQL NULL for JSON null), which the target's `COPY` reads with the column's type. Nothing is staged there; a refusal
 * fails the COPY, and the chunk is then applied as statements over staged values (ChunkStep.applyElsewhere).
 */
export async function copyInserts(
  db: Database,
  target: PoolClient,
  plan: StatementPlan,
  typed: TypedCopy | null = null,
): Promise<void> {
  const columns = plan.columns.map(quoteIdent).join(', ');
  const copy = `COPY ${qualifiedName(plan.table)} (${columns}) FROM STDIN`;
  if (typed) {
    const types = plan.columns.map((c): [string, string] => [typed.types.get(c)!, typed.types.get(c)!]);
    const format = typed.sameMajorVersion && binaryCopies(types) ? ' (FORMAT binary)' : '';
    if ((await copyFromQueue(db, target, typedRows(plan, typed.stage), copy, format)) > 0) return;
  }
  const values = plan.columns.map((name) => {
    const column = plan.table.columns.get(name);
    const json = column?.baseType === 'json' || column?.baseType === 'jsonb';
    const value = `o.row_values->${quoteLiteral(name)}`;
    if (column?.isArray) return `batch.array_literal(${value}, ${json})`;
    return json ? `nullif(${value}, 'null')::text` : `o.row_values->>${quoteLiteral(name)}`;
  });
  await copyFromQueue(db, target, valueRows(plan, values), copy);
}

/** The statement's operations' `values` in its order: one run of one priority (oneRun) by one range, in order of id. */
export function valueRows(plan: StatementPlan, values: string[]): string {
  const run = oneRun(plan.operations);
  return run
    ? `SELECT ${values.join(', ')} FROM batch.operations o WHERE o.id BETWEEN ${run[0]} AND ${run[1]} ORDER BY o.id`
    : `SELECT ${values.join(', ')} FROM ${operationsOf(plan.operations)} ORDER BY o.priority DESC, o.id`;
}

/**
 * The typed rows of a statement of one run (oneRun) in its stage, in order of id: each of them, or none where the stage
 * lacks a row for any (counted first, a one-time filter), so that nothing is drawn for a row the copy from the JSON
 * draws again.
 */
export function typedRows(plan: StatementPlan, stage: string): string {
  const [first, last] = oneRun(plan.operations)!;
  const rows = `FROM ${stage} WHERE operation_id BETWEEN ${first} AND ${last}`;
  const count = operationCount(plan.operations);
  return `SELECT ${plan.columns.map(quoteIdent).join(', ')} ${rows} AND (SELECT count(*) ${rows}) = ${count} ORDER BY operation_id`;
}

/**
 * A statement's stage to copy its typed rows from (StatementApplier.stageToCopy), with the types it keeps them in, and
 * whether the queue's server and the target's are of one major version: columns of the same built-in type then go in
 * COPY's binary format (binaryCopies), which neither writes nor parses each value's text.
 */
export interface TypedCopy {
  stage: string;
  types: Map<string, string>;
  sameMajorVersion: boolean;
}

/** Whether the queue's server and `target`'s are of one major version. */
export async function sameMajorVersion(db: Database, target: PoolClient): Promise<boolean> {
  const [[here], there] = await Promise.all([
    db.query<{ major: number }>(SERVER_MAJOR_VERSION),
    target.query(SERVER_MAJOR_VERSION),
  ]);
  return here.major === there.rows[0].major;
}

/**
 * `rows` of the queue's database streamed by `COPY … TO STDOUT` there into `copy` (a `COPY … FROM STDIN`) in `target`,
 * both in `format`: how many rows that copied.
 */
async function copyFromQueue(
  db: Database,
  target: PoolClient,
  rows: string,
  copy: string,
  format = '',
): Promise<number> {
  return usingConnection(db.pool, async (source) => {
    const into = target.query(copyFrom(copy + format));
    await pipeline(source.query(copyTo(`COPY (${rows}) TO STDOUT${format}`)), into);
    return into.rowCount;
  });
}

/** What applying a chunk's plan gave: outcomes, steps, the targets held back, the planner's refusals. */
export interface AppliedChunk {
  outcomes: OperationOutcome[];
  steps: StepRecord[];
  held: { operations: ClaimedOperation[]; error: unknown }[];
  filtered: number;
}

/**
 * A chunk's outcomes as its ledger row keeps them, to settle it from there should its worker stop before it records
 * them: its steps, the targets held back (their operations left pending), and its outcomes, null where each of the
 * other operations completed, affecting one row (nearly always: nothing more to write).
 */
interface LedgerOutcomes {
  steps: StepRecord[];
  filtered: number;
  held: string[];
  outcomes: OperationOutcome[] | null;
}

export function ledgerOutcomes(applied: AppliedChunk): LedgerOutcomes {
  const plain = applied.outcomes.every((o) => o.status === 'COMPLETED' && o.rowsAffected === 1 && !o.missed);
  return {
    steps: applied.steps,
    filtered: applied.filtered,
    held: [...new Set(applied.held.flatMap((h) => h.operations.map((op) => op.target)))],
    outcomes: plain ? null : applied.outcomes,
  };
}

/** The chunk as applied, from its ledger row: what settles it. Its held targets are simply claimed again. */
export function appliedFromLedger(recorded: unknown, chunk: ClaimedOperation[]): AppliedChunk {
  const { steps, filtered, held, outcomes } = recorded as LedgerOutcomes;
  const settled =
    outcomes ??
    chunk
      .filter((operation) => !held.includes(operation.target))
      .map((operation) => ({ operation, status: 'COMPLETED' as const, rowsAffected: 1, error: null }));
  const dated = steps.map((step) => ({
    ...step,
    startedAt: new Date(step.startedAt),
    endedAt: new Date(step.endedAt),
  }));
  return { outcomes: settled, steps: dated, held: [], filtered };
}
