import { numberArray } from './database';

/**
 * Runs of consecutive ids: how a chunk addresses its operations in bulk. A backlog written in bulk has consecutive
 * ids, so a chunk's thousands of operations are a few runs: a statement reads them by ranges of the primary key
 * instead of looking each one up, and a chunk records its completions as one row per run (batch.settled_runs).
 */
export function idRuns(ids: string[]): [string, string][] {
  // Numbers where every id is one exactly (15 digits at most: ids of a billion a day for 2,700 years), else BigInts.
  const exact = ids.every((id) => id.length <= 15);
  const sorted: (number | bigint)[] = exact ? ids.map(Number) : ids.map(BigInt);
  sorted.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const runs: [number | bigint, number | bigint][] = [];
  for (const id of sorted) {
    const run = runs.at(-1);
    if (run && (exact ? (run[1] as number) + 1 : (run[1] as bigint) + 1n) === id) run[1] = id;
    else runs.push([id, id]);
  }
  return runs.map(([first, last]) => [String(first), String(last)]);
}

/** The runs of the given ids as two parameters, their first and their last ids (PostgreSQL array literals). */
export function runParams(ids: string[]): [string, string] {
  const runs = idRuns(ids);
  return [numberArray(runs.map(([first]) => first)), numberArray(runs.map(([, last]) => last))];
}
