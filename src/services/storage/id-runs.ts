import { numberArray } from './database';

/** Operations by their first id and how many consecutive ids from it: one operation (count 1), or a run of them. */
export interface IdSpan {
  id: string;
  count: number;
}

/** A run of operations with what it carries besides its ids, known of it as a whole: its values' size, and its notification's. */
export interface Run extends IdSpan {
  bytes: number;
  chars: number;
}

/**
 * Runs of consecutive ids: how a chunk addresses its operations in bulk. A backlog written in bulk has consecutive
 * ids, so a chunk's thousands of operations are a few runs: a statement reads them by ranges of the primary key
 * instead of looking each one up, and a chunk records its completions as one row per run (batch.settled_runs). Ids,
 * or spans of them, in any order; spans that meet are merged.
 */
export function idRuns(spans: (string | IdSpan)[]): [string, string][] {
  const ids = spans.map((span) => (typeof span === 'string' ? span : span.id));
  const counts = spans.map((span) => (typeof span === 'string' ? 1 : span.count));
  // Numbers where every id is one exactly (15 digits at most: ids of a billion a day for 2,700 years), else BigInts.
  if (!ids.every((id) => id.length <= 15)) return bigIdRuns(ids, counts);
  const firsts = ids.map(Number);
  const order = firsts.map((_, i) => i);
  // a chunk's spans come nearly always in order of id: sorted only when they are not
  if (firsts.some((first, i) => i > 0 && first < firsts[i - 1])) order.sort((a, b) => firsts[a] - firsts[b]);
  const runs: [string, string][] = [];
  let [first, last] = [NaN, NaN];
  for (const i of order) {
    if (firsts[i] === last + 1) last = firsts[i] + counts[i] - 1;
    else {
      if (!Number.isNaN(first)) runs.push([String(first), String(last)]);
      [first, last] = [firsts[i], firsts[i] + counts[i] - 1];
    }
  }
  if (!Number.isNaN(first)) runs.push([String(first), String(last)]);
  return runs;
}

function bigIdRuns(ids: string[], counts: number[]): [string, string][] {
  const bounds = ids.map((id, i): [bigint, bigint] => [BigInt(id), BigInt(id) + BigInt(counts[i] - 1)]);
  bounds.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const runs: [bigint, bigint][] = [];
  for (const [first, last] of bounds) {
    const run = runs.at(-1);
    if (run && run[1] + 1n === first) run[1] = last;
    else runs.push([first, last]);
  }
  return runs.map(([first, last]) => [String(first), String(last)]);
}

/** The runs of the given ids as two parameters, their first and their last ids (PostgreSQL array literals). */
export function runParams(spans: (string | IdSpan)[]): [string, string] {
  const runs = idRuns(spans);
  return [numberArray(runs.map(([first]) => first)), numberArray(runs.map(([, last]) => last))];
}

/** The id `offset` places after `id`. */
export function idAfter(id: string, offset: number): string {
  return offset === 0 ? id : (BigInt(id) + BigInt(offset)).toString();
}

/** The last id of a span. */
export function lastId({ id, count }: IdSpan): string {
  return idAfter(id, count - 1);
}

/** How many operations these are, each run counted whole. */
export function operationCount(runs: IdSpan[]): number {
  let count = 0;
  for (const run of runs) count += run.count;
  return count;
}

/** A run's first `count` operations, and the rest (null when none is left), each with its share of bytes and chars. */
export function splitRun<T extends Run>(run: T, count: number): [T, T | null] {
  if (count >= run.count) return [run, null];
  const share = (total: number) => Math.round((total * count) / run.count);
  const head = { ...run, count, bytes: share(run.bytes), chars: share(run.chars) };
  const rest = {
    ...run,
    id: idAfter(run.id, count),
    count: run.count - count,
    bytes: run.bytes - head.bytes,
    chars: run.chars - head.chars,
  };
  return [head, rest];
}

/** A run taken apart into its operations, in order of id (an operation alone: itself). */
export function eachOperation<T extends Run>(run: T): T[] {
  const operations: T[] = [];
  for (let rest: T | null = run; rest;) {
    const [head, next]: [T, T | null] = splitRun(rest, 1);
    operations.push(head);
    rest = next;
  }
  return operations;
}
