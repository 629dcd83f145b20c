import type { ClaimedOperation } from '../../interfaces/chunk.interfaces';
import { idAfter } from '../storage/id-runs';

/** How many operations these are, each run counted whole. */
export function operationCount(operations: ClaimedOperation[]): number {
  let count = 0;
  for (const operation of operations) count += operation.count;
  return count;
}

/**
 * A run's first `count` operations, and the rest (null when none is left), each with its share of the run's bytes and
 * chars (they are known of the run as a whole: shared by its average).
 */
export function splitRun(run: ClaimedOperation, count: number): [ClaimedOperation, ClaimedOperation | null] {
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
export function eachOperation(operation: ClaimedOperation): ClaimedOperation[] {
  const operations: ClaimedOperation[] = [];
  for (let rest: ClaimedOperation | null = operation; rest;) {
    const [head, next]: [ClaimedOperation, ClaimedOperation | null] = splitRun(rest, 1);
    operations.push(head);
    rest = next;
  }
  return operations;
}
