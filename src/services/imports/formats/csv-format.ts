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
    const records = evenLineEnds(csvRecords(scan.buffer, scan.records, count, base), plan.quote.charCodeAt(0), refused);
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
