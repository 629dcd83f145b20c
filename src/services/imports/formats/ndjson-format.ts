import { ndjsonLines } from '../chunk-records';
import { checkColumns, unknownColumn } from '../import-columns';
import { ndjsonRecord, RecordProblem } from '../records';
import type { RecordFormat } from './record-format';

/** NDJSON: one JSON object per line, its keys the columns; each record is made a CSV line of COPY's defaults. */
export const NDJSON: RecordFormat = {
  name: 'ndjson',
  contentTypes: ['application/x-ndjson', 'application/ndjson', 'application/jsonl'],
  quote: () => null,
  copyOptions: () => ({ delimiter: ',', quote: '"', nullText: null }),
  checkPlan: () => undefined,
  readsHeader: () => false,
  headerColumns: () => {
    throw new Error('NDJSON has no header');
  },
  checksFirst: () => true,
  checkFirst(plan, text) {
    if (text.trim() === '') return false;
    let record;
    try {
      record = ndjsonRecord(text, plan.target.columns);
    } catch (error) {
      // a malformed record is a reject of the load; a key that is no column refuses the whole data set
      if (error instanceof RecordProblem && error.code === 'UNKNOWN_COLUMN')
        throw unknownColumn(plan, error.column!, 'keys');
      if (!(error instanceof RecordProblem)) throw error;
      return true;
    }
    // as a CSV header is: a NOT NULL column without a default, or the conflict key, left out refuses it too
    checkColumns(plan, record.columns, 'keys');
    return true;
  },
  // left to the load, which rejects it
  refusesLongFirst: false,
  toCopy: (scan, count, base, plan) => ndjsonLines(scan.buffer, scan.records, count, base, plan.target.columns),
};
