/** The largest id (bigint) there can be. */
export const MAX_ID = '9223372036854775807';

/**
 * The operations of a stream (a target's operations of one priority not scheduled, in order of id) after its
 * position and up to `upTo`, as SQL conditions on `o` (batch.operations) for `s` (a row of batch.streams): a range of
 * the stream index, bounded by row comparisons, which only that index serves. With the target and priority as
 * equalities the planner may walk the primary key in order of id instead, filtering its way to the stream: it guesses
 * a target's share of the table from the number of targets. (batch.claim, migration 1765100000000, reads them so too.)
 */
export function afterPosition(o: string, s: string, upTo: string = MAX_ID): string {
  return (
    `(${o}.target, ${o}.priority, ${o}.id) > (${s}.target, ${s}.priority, ${s}.taken_through) ` +
    `AND (${o}.target, ${o}.priority, ${o}.id) <= (${s}.target, ${s}.priority, ${upTo}) AND ${o}.not_before IS NULL`
  );
}
