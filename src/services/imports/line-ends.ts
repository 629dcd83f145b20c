/**
 * CSV line ends read the same wherever a chunk starts. COPY reads every line of its data with the line end of the first
 * one (LF, CRLF, or a lone carriage return), so a file that mixes them, or holds a carriage return outside quotes,
 * would load one way or another by which record a chunk (or a narrowing COPY) starts with. The import reads them for
 * itself instead: a record ends at a newline outside quotes, with or without a carriage return before it (a carriage
 * return ending the file's last record is its line end too), and a record holding a carriage return anywhere else
 * outside quotes is a reject, as COPY rejects it past its first line.
 */

const CR = 0x0d;
const LF = 0x0a;

/** What the carriage returns of CSV records [bounds[i], bounds[i + 1]) of some bytes say. */
export interface LineEnds {
  /** The records holding a carriage return outside quotes other than at their line end, in order. */
  lone: number[];
  /** Whether the other records end in more than one way, so that COPY must be given them each ending LF. */
  mixed: boolean;
}

/** The carriage returns of the records, found in one search when there is none (as in most files). */
export function lineEnds(data: Buffer, bounds: ArrayLike<number>, quote: number): LineEnds {
  const count = bounds.length - 1;
  const lone: number[] = [];
  let crlf = 0; // records kept that end CRLF
  let crAtEnd = false; // the last record, kept, ends with a carriage return and no newline
  // whether a quoted field is open at `scanned` in `record`: counted on from the last carriage return of the record
  let [record, quoted, scanned, counting] = [0, false, 0, -1];
  for (let at = data.indexOf(CR, bounds[0]); at >= 0 && at < bounds[count]; at = data.indexOf(CR, at + 1)) {
    while (bounds[record + 1] <= at) record += 1;
    const [start, end] = [bounds[record], bounds[record + 1]];
    const rejected = lone[lone.length - 1] === record;
    // before the newline that ends the record, the carriage return is outside quotes (the newline is)
    if (at === end - 2 && data[end - 1] === LF) {
      if (!rejected) crlf += 1;
      continue;
    }
    if (rejected) continue;
    if (counting !== record) [counting, quoted, scanned] = [record, false, start];
    for (; scanned < at; scanned++) if (data[scanned] === quote) quoted = !quoted;
    if (quoted) continue;
    if (at === end - 1 && record === count - 1) crAtEnd = true;
    else lone.push(record);
  }
  if (crlf === 0 && !crAtEnd) return { lone, mixed: false };
  const unended = lone[lone.length - 1] !== count - 1 && data[bounds[count] - 1] !== LF; // the file's last record, kept
  const ended = count - lone.length - (unended ? 1 : 0); // records kept that end with a newline
  return { lone, mixed: crAtEnd || crlf < ended };
}

/** The records each ending LF: a carriage return before a record's newline, or ending the last record, left out. */
export function endedByLineFeed(data: Buffer, bounds: ArrayLike<number>): { data: Buffer; bounds: Float64Array } {
  const count = bounds.length - 1;
  const out = Buffer.allocUnsafe(bounds[count] - bounds[0]);
  const ends = new Float64Array(count + 1);
  let length = 0;
  for (let i = 0; i < count; i++) {
    const [start, end] = [bounds[i], bounds[i + 1]];
    if (end - start >= 2 && data[end - 1] === LF && data[end - 2] === CR) {
      length += data.copy(out, length, start, end - 2);
      out[length++] = LF;
    } else if (i === count - 1 && end > start && data[end - 1] === CR) length += data.copy(out, length, start, end - 1);
    else length += data.copy(out, length, start, end);
    ends[i + 1] = length;
  }
  return { data: out.subarray(0, length), bounds: ends };
}
