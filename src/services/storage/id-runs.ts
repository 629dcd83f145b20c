import { numberArray } from './database';

/**
 * Operations by their first id and how many consecutive ids from it: one operation (count 1), or a run of them; or a
 * round, whose ids are listed (`ids`, ascending, `count` of them): the k-th operations on the rows of a stream.
 */
export interface IdSpan {
  id: string;
  count: number;
  ids?: string[];
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
  const ids: string[] = [];
  const counts: number[] = [];
  const add = (id: string, count: number) => (ids.push(id), counts.push(count));
  for (const span of spans) {
    if (typeof span === 'string') add(span, 1);
    else if (span.ids) for (const id of span.ids) add(id, 1);
    else add(span.id, span.count);
  }
  // Numbers where every id is one exactly (15 digits at most: ids of a billion a day for 2,700 years), else BigInts.
  if (!ids.every((id) => id.length <= 15)) return bigIdRuns(ids, counts);
  const firsts = Float64Array.from(ids, Number);
  const lasts = firsts.map((first, i) => first + counts[i] - 1);
  if (firsts.some((first, i) => i > 0 && first < firsts[i - 1])) sortTogether(firsts, lasts);
  const runs: [number, number][] = [];
  for (let i = 0; i < firsts.length; i++) {
    const run = runs.at(-1);
    if (run && firsts[i] === run[1] + 1) run[1] = lasts[i];
    else runs.push([firsts[i], lasts[i]]);
  }
  return runs.map(([first, last]) => [String(first), String(last)]);
}

/**
 * Spans in order of their first ids. A chunk's spans come in order, but its outcomes in the order of its statements:
 * single operations, sorted as numbers, natively.
 */
function sortTogether(firsts: Float64Array, lasts: Float64Array): void {
  if (firsts.every((first, i) => first === lasts[i])) {
    lasts.set(firsts.sort());
    return;
  }
  const order = Array.from(firsts.keys()).sort((a, b) => firsts[a] - firsts[b]);
  const [sortedFirsts, sortedLasts] = [order.map((i) => firsts[i]), order.map((i) => lasts[i])];
  firsts.set(sortedFirsts);
  lasts.set(sortedLasts);
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

/** Ids at most this far apart are read as one range, the ids between them read and left out (taggedSpans). */
const SPAN_GAP = 4;

/**
 * Runs of ids, each with a tag (1 or more), as ranges of the primary key to read and the tag of every id they hold (0
 * for ids of none of the runs): runs close together are read as one range (SPAN_GAP), where a lookup each would cost
 * several times the rows between them. Returns the ranges' first and last ids and the tags of their ids, in order
 * (PostgreSQL array literals). A statement reads the tag of id `i` of the range that ends at `last`, its k-th, as
 * `tags[(ranges' lengths through the k-th) - last + i]`.
 */
export function taggedSpans(runs: [string, string, number][]): [string, string, string] {
  const sorted = [...runs].sort(([a], [b]) => compareIds(a, b));
  const spans: [string, string][] = [];
  const tags: number[] = [];
  for (const [first, last, tag] of sorted) {
    const span = spans.at(-1);
    const gap = span ? idDistance(span[1], first) - 1 : Infinity;
    if (span && gap < SPAN_GAP) {
      for (let k = 0; k < gap; k++) tags.push(0);
      span[1] = last;
    } else spans.push([first, last]);
    for (let k = idDistance(first, last); k >= 0; k--) tags.push(tag);
  }
  return [numberArray(spans.map(([first]) => first)), numberArray(spans.map(([, last]) => last)), numberArray(tags)];
}

/** Ids (canonical decimals) in numeric order. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

/** How many ids `to` is after `from`. */
function idDistance(from: string, to: string): number {
  return from.length <= 15 && to.length <= 15 ? Number(to) - Number(from) : Number(BigInt(to) - BigInt(from));
}

/** The id `offset` places after `id`. */
export function idAfter(id: string, offset: number): string {
  return offset === 0 ? id : (BigInt(id) + BigInt(offset)).toString();
}

/** The last id of a span. */
export function lastId({ id, count, ids }: IdSpan): string {
  return ids ? ids[ids.length - 1] : idAfter(id, count - 1);
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
    id: run.ids ? run.ids[count] : idAfter(run.id, count),
    count: run.count - count,
    bytes: run.bytes - head.bytes,
    chars: run.chars - head.chars,
  };
  if (run.ids) [head.ids, rest.ids] = [run.ids.slice(0, count), run.ids.slice(count)];
  return [head, rest];
}

/** A run or a round taken apart into its operations, in order of id (an operation alone: itself). */
export function eachOperation<T extends Run>(run: T): T[] {
  if (run.ids) {
    const bytes = run.bytes / run.count;
    const chars = run.chars / run.count;
    return run.ids.map((id) => ({ ...run, id, count: 1, ids: undefined, bytes, chars }));
  }
  const operations: T[] = [];
  for (let rest: T | null = run; rest;) {
    const [head, next]: [T, T | null] = splitRun(rest, 1);
    operations.push(head);
    rest = next;
  }
  return operations;
}
