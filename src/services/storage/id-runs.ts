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
  const runs = numericRuns(spans);
  if (!runs) return bigIdRuns(spans);
  return Array.from(runs.firsts, (first, k): [string, string] => [String(first), String(runs.lasts[k])]);
}

/**
 * Runs as numbers, their first and last ids, in order; null where an id has more than 15 digits (each number is then
 * an id exactly: ids of a billion a day for 2,700 years), left to bigIdRuns.
 */
function numericRuns(spans: (string | IdSpan)[]): { firsts: number[]; lasts: number[] } | null {
  const { ids, counts } = spanStarts(spans);
  const firsts = new Float64Array(ids.length);
  const lasts = new Float64Array(ids.length);
  let sorted = true;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i].length > 15) return null;
    firsts[i] = Number(ids[i]);
    lasts[i] = firsts[i] + counts[i] - 1;
    if (i > 0 && firsts[i] < firsts[i - 1]) sorted = false;
  }
  if (!sorted) sortTogether(firsts, lasts);
  const runs = { firsts: [] as number[], lasts: [] as number[] };
  for (let i = 0; i < firsts.length; i++) {
    const end = runs.lasts.length - 1;
    if (end >= 0 && firsts[i] === runs.lasts[end] + 1) runs.lasts[end] = lasts[i];
    else {
      runs.firsts.push(firsts[i]);
      runs.lasts.push(lasts[i]);
    }
  }
  return runs;
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

/** Each span's first id and how many ids from it it holds: a round's listed ids one by one, each holding itself. */
function spanStarts(spans: (string | IdSpan)[]): { ids: string[]; counts: number[] } {
  const ids: string[] = [];
  const counts: number[] = [];
  for (const span of spans) {
    if (typeof span === 'string') {
      ids.push(span);
      counts.push(1);
    } else if (span.ids) {
      for (const id of span.ids) {
        ids.push(id);
        counts.push(1);
      }
    } else {
      ids.push(span.id);
      counts.push(span.count);
    }
  }
  return { ids, counts };
}

function bigIdRuns(spans: (string | IdSpan)[]): [string, string][] {
  const { ids, counts } = spanStarts(spans);
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
  return paramsOfRuns(idRuns(spans));
}

/** Runs (idRuns) as the two parameters of runParams. */
export function paramsOfRuns(runs: [string, string][]): [string, string] {
  return [numberArray(runs.map(([first]) => first)), numberArray(runs.map(([, last]) => last))];
}

/** Runs with fewer ids than this between them are read as one range, the ids between read and left out (taggedSpans). */
const SPAN_GAP = 4;

/**
 * Groups of operations, each with a tag (1 or more), as ranges of the primary key to read and the tag of every id they
 * hold (0 for ids of no group): runs close together are read as one range (SPAN_GAP), where a lookup each would cost
 * several times the rows between them. Returns the ranges' first and last ids and the tags of their ids, in order
 * (PostgreSQL array literals). A statement reads the tag of id `i` of the range that ends at `last`, its k-th, as
 * `tags[(ranges' lengths through the k-th) - last + i]`.
 */
export function taggedSpans(groups: { spans: (string | IdSpan)[]; tag: number }[]): [string, string, string] {
  const numeric = groups.map(({ spans }) => numericRuns(spans));
  if (numeric.includes(null)) return bigTaggedSpans(groups);
  const runs = numeric as { firsts: number[]; lasts: number[] }[];
  const [firsts, lasts, tags]: number[][] = [[], [], []];
  const next = runs.map(() => 0); // each group's runs are in order: merged, the lowest first id next
  for (;;) {
    let g = -1;
    for (let h = 0; h < runs.length; h++)
      if (next[h] < runs[h].firsts.length && (g < 0 || runs[h].firsts[next[h]] < runs[g].firsts[next[g]])) g = h;
    if (g < 0) break;
    const [first, last] = [runs[g].firsts[next[g]], runs[g].lasts[next[g]++]];
    const gap = first - lasts[lasts.length - 1] - 1; // NaN for the first
    // An id given twice would shift every tag after it: each operation is in one group, once.
    if (gap < 0) throw new Error(`id ${first} is given twice`);
    if (gap < SPAN_GAP) {
      for (let k = 0; k < gap; k++) tags.push(0);
      lasts[lasts.length - 1] = last;
    } else {
      firsts.push(first);
      lasts.push(last);
    }
    for (let id = first; id <= last; id++) tags.push(groups[g].tag);
  }
  return [numberArray(firsts), numberArray(lasts), numberArray(tags)];
}

/** taggedSpans where an id has more than 15 digits: each group's runs as they are, none merged. */
function bigTaggedSpans(groups: { spans: (string | IdSpan)[]; tag: number }[]): [string, string, string] {
  const runs = groups.flatMap(({ spans, tag }) => idRuns(spans).map(([first, last]) => ({ first, last, tag })));
  const tags = runs.flatMap(({ first, last, tag }) =>
    Array<number>(Number(BigInt(last) - BigInt(first)) + 1).fill(tag),
  );
  return [numberArray(runs.map((r) => r.first)), numberArray(runs.map((r) => r.last)), numberArray(tags)];
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

/** Calls `each` with the ids from `first` through `last`, as decimal strings. */
export function eachId(first: string, last: string, each: (id: string) => void): void {
  if (last.length <= 15) for (let id = Number(first), end = Number(last); id <= end; id++) each(String(id));
  else for (let id = BigInt(first), end = BigInt(last); id <= end; id++) each(String(id));
}

/** Calls `each` with the ids of a span: a run's, or a round's listed ones. */
export function eachIdOf(span: IdSpan, each: (id: string) => void): void {
  if (span.ids) span.ids.forEach((id) => each(id));
  else eachId(span.id, lastId(span), each);
}

/**
 * The ids from `first` through `last` that are `marked`, as a bitmap in hex: bit k (the lowest of a byte first, as
 * PostgreSQL's get_bit counts) for the id k places after `first`. Null where none is marked.
 */
export function idBitmap(first: string, last: string, marked: ReadonlySet<string>): string | null {
  if (marked.size === 0) return null;
  const bitmap = Buffer.alloc(Math.floor(Number(BigInt(last) - BigInt(first)) / 8) + 1);
  let k = 0;
  let any = false;
  eachId(first, last, (id) => {
    if (marked.has(id)) {
      bitmap[k >> 3] |= 1 << (k & 7);
      any = true;
    }
    k++;
  });
  return any ? bitmap.toString('hex') : null;
}

/** Whether the bitmap (idBitmap's bytes) marks the id `offset` places after its first. */
export function isMarked(bitmap: Buffer, offset: number): boolean {
  return ((bitmap[offset >> 3] >> (offset & 7)) & 1) === 1;
}

/** A run or a round taken apart into its operations, in order of id (an operation alone: itself). */
export function eachOperation<T extends Run>(run: T): T[] {
  if (run.ids) {
    const bytes = run.bytes / run.count;
    const chars = run.chars / run.count;
    return run.ids.map((id) => ({ ...run, id, count: 1, ids: undefined, bytes, chars }));
  }
  if (run.count === 1) return [run];
  // each with its share of the run's bytes and chars, whole numbers that add up to the run's
  const share = (total: number, i: number) =>
    Math.round((total * (i + 1)) / run.count) - Math.round((total * i) / run.count);
  const operations: T[] = [];
  eachId(run.id, lastId(run), (id) => {
    const i = operations.length;
    operations.push({ ...run, id, count: 1, bytes: share(run.bytes, i), chars: share(run.chars, i) });
  });
  return operations;
}
