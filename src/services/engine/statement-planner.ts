import type { ClaimedOperation, StatementPlan } from '../../interfaces/chunk.interfaces';
import type { TargetTable } from '../../interfaces/catalog.interfaces';
import { keysVersion, parseIdentity, parseShape, Shape } from '../ingest/row-identity';
import { splitRun } from '../storage/id-runs';

/**
 * Plans the operations of one target, in their order of application, into statements that — run in order —
 * give exactly the result of running the operations one at a time.
 *
 * Each operation joins the first statement of its shape (type, columns, key) that has room and that no earlier
 * operation it does not commute with forbids (one at or after every statement holding such an operation); where there
 * is none, it opens a new statement at the end. So the k-th operation on a row goes into the k-th statement of its
 * shape, however the shapes of different rows interleave. What forbids a statement:
 * - the same row (a shared key value) → a later statement: one statement never touches a row twice;
 * - rows that cannot be told apart (addressed through different unique keys, or keys whose values have no
 *   canonical form here) → a later statement;
 * - inserts and upserts keep their relative order (defaults such as sequences are drawn in that order), which
 *   a statement preserves (`ORDER BY ord`), so they may share one;
 * - an update or increment that changes a unique or primary-key column could collide with anything: a
 *   barrier that everything before it precedes and everything after it follows; an upsert that may change
 *   one keeps its order with every operation addressed through that key;
 * - a delete frees every unique value of its row, which an insert into another row may need: with more than
 *   one unique key, deletes and inserts/upserts keep their relative order.
 * Operations that commute can be reordered freely, so only these constraints need keeping. Failures stay
 * those of sequential execution: a failing statement is re-run one operation at a time, in order.
 *
 * It reads no values: each operation's shape and the rows it may touch were computed when it was created
 * (row-identity.ts). A statement holds at most `limits.rows` operations and `limits.bytes` of their values.
 */
export interface StatementLimits {
  rows: number;
  bytes: number;
}

/**
 * One function over 60 lines on purpose: one pass over the operations, keeping per token, key and type the last
 * statement each was placed in; split up, that state would travel between the pieces and the rules above would no
 * longer read in one place.
 */
export function planStatements(
  table: TargetTable,
  operations: ClaimedOperation[],
  limits: StatementLimits,
): StatementPlan[] {
  const statements: StatementPlan[] = [];
  const alone = (op: ClaimedOperation, shape: Shape) =>
    statements.push({ ...statementOf(table, shape), operations: [op] });
  if (table.oneRowStatements) {
    for (const op of operations) alone(op, parseShape(op.shape));
    return statements;
  }
  const version = keysVersion(table);
  const bytes: number[] = []; // of each statement's values
  const openOfShape = new Map<string, number[]>(); // the statements of each shape with room, in order
  const lastOfToken = new Map<string, number>();
  const lastKeyedByKey = new Map<string, number>(); // key-addressed operations, by their (canonical) key
  const lastInsertByKeys = new Map<string, { keys: string[]; index: number }>(); // inserts/upserts, by the keys they give
  let lastUnknownKeyed = -1; // key-addressed operations whose key has no canonical form
  let lastInsert = -1;
  let lastDelete = -1;
  let floor = 0; // after the last barrier
  const deletesMeetInserts = table.uniqueKeys.length > 1;

  for (const op of operations) {
    const shape = parseShape(op.shape);
    if (shape.keysVersion !== version) {
      // Its identity was computed against other unique keys than the table has now: a statement of its own, a barrier.
      alone(op, shape);
      bytes.push(op.bytes);
      floor = statements.length;
      continue;
    }
    const identity = parseIdentity(op.identity ?? '');
    let min = identity.barrier ? statements.length : floor;
    for (const token of identity.tokens) min = Math.max(min, (lastOfToken.get(token) ?? -1) + 1);
    min = Math.max(min, lastUnknownKeyed + 1);
    if (identity.key === undefined) {
      min = Math.max(min, lastInsert);
      if (deletesMeetInserts) min = Math.max(min, lastDelete + 1);
      for (const [key, index] of lastKeyedByKey) if (!identity.keys.includes(key)) min = Math.max(min, index + 1);
    } else {
      if (deletesMeetInserts && shape.type === 'delete') min = Math.max(min, lastInsert + 1);
      for (const [key, index] of lastKeyedByKey) if (key !== identity.key) min = Math.max(min, index + 1);
      for (const { keys, index } of lastInsertByKeys.values())
        if (identity.key === null || !keys.includes(identity.key)) min = Math.max(min, index + 1);
    }

    const open = openOfShape.get(op.shape) ?? [];
    let at = firstAtLeast(open, min);
    while (at < open.length && bytes[open[at]] + op.bytes > limits.bytes) at++;
    let index = open[at];
    if (index === undefined) {
      index = statements.length;
      statements.push({ ...statementOf(table, shape), operations: [] });
      bytes.push(0);
      open.push(index);
      openOfShape.set(op.shape, open);
      at = open.length - 1;
    }
    statements[index].operations.push(op);
    bytes[index] += op.bytes;
    if (statements[index].operations.length >= limits.rows) open.splice(at, 1);

    for (const token of identity.tokens) lastOfToken.set(token, Math.max(lastOfToken.get(token) ?? -1, index));
    if (identity.key === undefined) {
      lastInsert = Math.max(lastInsert, index);
      const signature = identity.keys.join(' ');
      lastInsertByKeys.set(signature, {
        keys: identity.keys,
        index: Math.max(lastInsertByKeys.get(signature)?.index ?? -1, index),
      });
    } else if (identity.key === null) {
      lastUnknownKeyed = Math.max(lastUnknownKeyed, index);
    } else {
      lastKeyedByKey.set(identity.key, Math.max(lastKeyedByKey.get(identity.key) ?? -1, index));
    }
    if (shape.type === 'delete') lastDelete = Math.max(lastDelete, index);
    if (identity.barrier) floor = index + 1;
  }
  return statements;
}

/** The position of the first of `sorted` (ascending) that is at least `min`. */
function firstAtLeast(sorted: number[], min: number): number {
  let [low, high] = [0, sorted.length];
  while (low < high) {
    const middle = (low + high) >> 1;
    if (sorted[middle] < min) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Plans runs (a stream's leading operations, in order of application: see batch.claim) into statements, in that order:
 * each run joins the last statement while its shape is the same and the statement has room (`limits.rows` operations,
 * `limits.bytes` of values: a run is cut by its average size), else starts the next one. For inserts and upserts their
 * order is all that must be kept: a statement inserts in plan order, and where two of its operations meet one row it
 * fails and is applied one at a time, as they would be. Updates, deletes and increments lead a stream only where each
 * addresses another row through the same unique key, so they commute; a statement takes them from one stream only
 * (one priority), as another stream's may address the same rows. A round (batch.claim) gets statements of its own: its
 * operations address pairwise different rows, which the rounds before and after it address too. Where the table needs
 * statements of one row, every operation gets its own.
 */
export function planRuns(table: TargetTable, runs: ClaimedOperation[], limits: StatementLimits): StatementPlan[] {
  const statements: StatementPlan[] = [];
  const version = keysVersion(table);
  let rows = 0;
  let bytes = 0;
  for (const run of runs) {
    const shape = parseShape(run.shape);
    const keyed = shape.type !== 'insert' && shape.type !== 'upsert';
    // Rows told apart against other unique keys than the table has now may be one row: one operation a statement.
    const maxRows = table.oneRowStatements || (keyed && shape.keysVersion !== version) ? 1 : limits.rows;
    for (let rest: ClaimedOperation | null = run; rest;) {
      let last = statements.at(-1);
      if (
        !last ||
        last.operations[0].shape !== rest.shape ||
        (keyed && last.operations[0].priority !== rest.priority) || // other streams may address the same rows
        rest.ids !== undefined || // a round meets the rows of the rounds around it
        last.operations[0].ids !== undefined ||
        rows >= maxRows ||
        bytes >= limits.bytes
      ) {
        statements.push((last = { ...statementOf(table, shape), operations: [] }));
        [rows, bytes] = [0, 0];
      }
      const room = Math.min(
        maxRows - rows,
        rest.bytes > limits.bytes - bytes ? Math.ceil(((limits.bytes - bytes) * rest.count) / rest.bytes) : rest.count,
      );
      const [head, next]: [ClaimedOperation, ClaimedOperation | null] = splitRun(rest, room);
      last.operations.push(head);
      rows += head.count;
      bytes += head.bytes;
      rest = next;
    }
  }
  return statements;
}

function statementOf(table: TargetTable, shape: Shape): Omit<StatementPlan, 'operations'> {
  return { table, type: shape.type, columns: shape.columns, keyColumns: shape.keyColumns };
}

/** Types whose modifier a cast applies as an assignment does (rounding, range), where another type's truncates. */
const CAST_AS_ASSIGNED = new Set(['numeric', 'timestamp', 'timestamptz', 'time', 'timetz', 'interval']);

/** At most this many rounds are folded into one statement (its text grows with each). */
const MOST_FOLDED = 16;

/**
 * A target's statements, in order, as the groups to apply: rounds (batch.claim) of updates and increments that follow
 * one another through the same unique key, on a table where nothing sees or checks a row between its changes
 * (foldsRowChanges), make one group, applied as one change of each row (foldedStatement): a row inserted and then
 * incremented twice and updated is written twice, not four times. Every other statement is a group of its own. A fold
 * is exact only where each step is evaluated as its own statement would be: so not for array columns, nor for columns
 * whose modifier a cast would apply otherwise than an assignment (a `varchar(n)` value is cut by a cast, refused by an
 * assignment).
 */
export function foldRounds(statements: StatementPlan[]): StatementPlan[][] {
  const groups: StatementPlan[][] = [];
  for (const statement of statements) {
    const group = groups.at(-1);
    const first = group?.[0];
    if (
      group &&
      first &&
      group.length < MOST_FOLDED &&
      foldable(first) &&
      foldable(statement) &&
      first.keyColumns!.join() === statement.keyColumns!.join()
    )
      group.push(statement);
    else groups.push([statement]);
  }
  return groups;
}

function foldable({ table, type, columns, operations }: StatementPlan): boolean {
  return (
    table.foldsRowChanges &&
    (type === 'update' || type === 'increment') &&
    operations.every((op) => op.ids !== undefined && parseShape(op.shape).keysVersion === keysVersion(table)) &&
    columns.every((name) => {
      const column = table.columns.get(name);
      return (
        column !== undefined &&
        !column.isArray &&
        (type === 'increment' || column.typmod < 0 || CAST_AS_ASSIGNED.has(column.baseType))
      );
    })
  );
}
