import { csvRecords, CopyRuns, Refusal, refuse, Records, Scan, without } from '../chunk-records';
import { checkColumns } from '../import-columns';
import { endedByLineFeed, lineEnds } from '../line-ends';
import { csvFields } from '../records';
import type { CsvOptions, ImportSettings, RecordFormat } from './record-format';

/** CSV (RFC 4180, with the plan's delimiter, quote and NULL text): its records go to COPY as they are. */
export const CSV: RecordFormat = {
  name: 'csv',
  contentTypes: ['text/csv', 'application/csv'],
  quote: (plan) => plan.quote.charCodeAt(0),
  copyOptions: (plan): CsvOptions => plan,
  checkPlan(plan) {
    if (!plan.header) checkColumns(plan, plan.columns, 'columns');
  },
  readsHeader: (plan) => plan.header,
  headerColumns: (plan, text) => checkColumns(plan, csvFields(text, plan.delimiter, plan.quote)),
  checksFirst: (plan) => plan.header,
  checkFirst(plan, text) {
    checkColumns(plan, csvFields(text, plan.delimiter, plan.quote));
    return true;
  },
  refusesLongFirst: true,
  async toCopy(scan: Scan, count: number, base: number, plan: ImportSettings, columns: string[] | undefined) {
    const refused: Refusal[] = [];
    const even = evenLineEnds(csvRecords(scan.buffer, scan.records, count, base), plan.quote.charCodeAt(0), refused);
    const records = endMarkersQuoted(even, plan.quote.charCodeAt(0));
    return { runs: [{ columns: columns ?? plan.columns, records }], refused } satisfies CopyRuns;
  },
};

/** CSV records as COPY reads them the same way whatever record it starts with (line-ends.ts); the others refused. */
function evenLineEnds(records: Records, quote: number, refused: Refusal[]): Records {
  const { lone, mixed } = lineEnds(records.data, records.bounds, quote);
  for (const i of lone)
    refuse(refused, records, i, { code: '22P04', message: 'unquoted carriage return found in data' });
  const kept = lone.length > 0 ? without(records, lone) : records;
  return mixed ? { ...kept, ...endedByLineFeed(kept.data, kept.bounds) } : kept;
}

const BACKSLASH = 0x5c;
const DOT = 0x2e;

/**
 * The records with each one that is `\.` alone on its line quoted (`"\."`): COPY takes such a line for the end of its
 * data and drops the rest of it without an error, where the record is a value `\.` (a one-column file) or a record
 * short of fields, rejected as such.
 */
export function endMarkersQuoted(records: Records, quote: number): Records {
  const { data, bounds } = records;
  const count = bounds.length - 1;
  const at = data.indexOf('\\.', bounds[0]);
  if (at < 0 || at >= bounds[count]) return records;
  const markers: number[] = [];
  for (let i = 0; i < count; i++) if (isEndMarker(data, bounds[i], bounds[i + 1])) markers.push(i);
  if (markers.length === 0) return records;
  const out = Buffer.allocUnsafe(bounds[count] - bounds[0] + 2 * markers.length);
  const ends = new Float64Array(count + 1);
  let length = 0;
  for (let i = 0, m = 0; i < count; i++) {
    if (i === markers[m]) {
      m += 1;
      out[length++] = quote;
      length += data.copy(out, length, bounds[i], bounds[i] + 2);
      out[length++] = quote;
      length += data.copy(out, length, bounds[i] + 2, bounds[i + 1]); // its line end
    } else length += data.copy(out, length, bounds[i], bounds[i + 1]);
    ends[i + 1] = length;
  }
  return { ...records, data: out.subarray(0, length), bounds: ends };
}

/** Whether data [start, end) is `\.` and a line end (LF or CR LF) or none. */
function isEndMarker(data: Buffer, start: number, end: number): boolean {
  if (data[start] !== BACKSLASH || data[start + 1] !== DOT) return false;
  const rest = end - start - 2;
  return (
    rest === 0 ||
    (rest === 1 && data[end - 1] === 0x0a) ||
    (rest === 2 && data[end - 2] === 0x0d && data[end - 1] === 0x0a)
  );
}
