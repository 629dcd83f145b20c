import type { IJobReject } from '../interfaces/job.interfaces';

const CSV_COLUMNS: (keyof IJobReject)[] = ['line', 'byteOffset', 'column', 'code', 'message', 'record'];

/**
 * What a spreadsheet opening the file would take for the start of a formula (CSV injection): a reject's record is
 * whatever a caller uploaded, and an admin may open another client's rejects.
 */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * Rejects as RFC 4180 CSV, with a header. A text field that starts like a formula is written after an apostrophe,
 * which spreadsheets show as text; the JSON form gives every field as it is.
 */
export function rejectsCsv(rejects: IJobReject[]): string {
  const field = (value: unknown) => {
    if (value === null || value === undefined) return '';
    let text = String(value);
    if (typeof value === 'string' && FORMULA_START.test(text)) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return (
    [CSV_COLUMNS.join(','), ...rejects.map((r) => CSV_COLUMNS.map((c) => field(r[c])).join(','))].join('\r\n') + '\r\n'
  );
}
