const NEWLINE = 0x0a;

/** Records found in a buffer: where each starts, on which line, and how far the scan got. */
export interface ScannedRecords {
  /** Offset in the buffer where each record starts; `end` is one past the last one's end (its newline included). */
  starts: Float64Array;
  /** The file's physical line (1-based) where each record starts. */
  lines: Float64Array;
  /** Offset in the buffer after the last complete record. */
  end: number;
  /** The physical line at `end`. */
  endLine: number;
  /** A quoted field was still open where the data ended (only at the end of the file). */
  unterminated: boolean;
}

/**
 * Finds up to `max` records of CSV (`quote` given: a newline inside quotes belongs to the field, RFC 4180's doubled
 * quote toggles twice and so changes nothing) or NDJSON (`quote` null: a record is a line) in `buffer` from `from`,
 * without parsing their fields: COPY parses them. A record is complete at its newline; at the end of the file
 * (`atEnd`) the last one is complete without one. `line` is the physical line at `from`.
 */
export function scanRecords(
  buffer: Buffer,
  from: number,
  max: number,
  quote: number | null,
  atEnd: boolean,
  line: number,
): ScannedRecords {
  // Sized once (a record takes a byte at least): a chunk's hundred thousand offsets in arrays grown as they come were
  // copied again and again, each copy a large object on the heap.
  const capacity = Math.max(0, Math.min(max, buffer.length - from));
  const starts = new Float64Array(capacity);
  const lines = new Float64Array(capacity);
  let count = 0;
  const scanned = (end: number, endLine: number, unterminated: boolean): ScannedRecords => ({
    starts: starts.subarray(0, count),
    lines: lines.subarray(0, count),
    end,
    endLine,
    unterminated,
  });
  let position = from;
  let current = line;
  // where the next quote is (searched again only once passed), so that a record without one is found by indexOf alone
  let nextQuote = quote === null ? -1 : buffer.indexOf(quote, from);
  while (count < max && position < buffer.length) {
    const start = position;
    const startLine = current;
    if (nextQuote >= 0 && nextQuote < position) nextQuote = buffer.indexOf(quote!, position);
    let newline = buffer.indexOf(NEWLINE, position);
    let quoted = false;
    if (nextQuote >= 0 && (newline < 0 || nextQuote < newline)) {
      newline = -1;
      for (let i = nextQuote; i < buffer.length; i++) {
        const byte = buffer[i];
        if (byte === quote) quoted = !quoted;
        else if (byte === NEWLINE) {
          if (!quoted) {
            newline = i;
            break;
          }
          current += 1;
        }
      }
      nextQuote = newline < 0 ? -1 : buffer.indexOf(quote!, newline);
    }
    if (newline < 0) {
      if (!atEnd) return scanned(start, startLine, false);
      starts[count] = start;
      lines[count++] = startLine;
      return scanned(buffer.length, current, quoted);
    }
    starts[count] = start;
    lines[count++] = startLine;
    position = newline + 1;
    current += 1;
  }
  return scanned(position, current, false);
}

/** How far a record read piece by piece has got: whether a quoted field is open, and the newlines it held so far. */
export interface RecordCursor {
  quoted: boolean;
  newlines: number;
}

/**
 * Where a record read piece by piece (one too long to be held whole) ends in `piece`: one past the newline that ends
 * it, or -1 when it goes on after `piece` (`cursor` carries what was seen to the next piece). CSV (`quote` given) as
 * scanRecords reads it, NDJSON (`quote` null) a line.
 */
export function recordEndIn(piece: Buffer, quote: number | null, cursor: RecordCursor): number {
  if (quote === null) {
    const newline = piece.indexOf(NEWLINE);
    return newline < 0 ? -1 : newline + 1;
  }
  for (let i = 0; i < piece.length; i++) {
    const byte = piece[i];
    if (byte === quote) cursor.quoted = !cursor.quoted;
    else if (byte === NEWLINE) {
      if (!cursor.quoted) return i + 1;
      cursor.newlines += 1;
    }
  }
  return -1;
}
