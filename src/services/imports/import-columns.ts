import { BatchError, invalidField } from '../batch-error';
import { quoted } from '../quoted';
import type { ImportSettings } from './formats/record-format';

/** Where an import's columns are named: the CSV header, the `columns` parameter, or an NDJSON record's keys. */
export type ColumnsNamedBy = 'header' | 'columns' | 'keys';

/** The table's columns a message lists at most. */
const LISTED = 40;

/**
 * The columns a CSV header (or the `columns` parameter) names, checked against the target: each a writable column,
 * none twice, every NOT NULL column without a default among them, and for an upsert its conflict key.
 */
export function checkColumns(plan: ImportSettings, columns: string[], namedBy: ColumnsNamedBy = 'header'): string[] {
  const { target } = plan;
  const seen = new Set<string>();
  for (const name of columns) {
    const column = target.columns.get(name);
    if (!column) throw unknownColumn(plan, name, namedBy, columns);
    if (column.generatedAlways) throw invalidField('columns', `${name} is generated and cannot be written`);
    if (seen.has(name)) throw invalidField('columns', `${name} is named twice`);
    seen.add(name);
  }
  const missing = [...target.columns.values()].find(
    (c) => c.notNull && !c.hasDefault && !c.generatedAlways && !seen.has(c.name),
  );
  if (missing)
    throw invalidField('columns', `${missing.name} is NOT NULL without a default, and the data has no such column`);
  const unkeyed = plan.conflictKey?.find((name) => !seen.has(name));
  if (unkeyed) throw invalidField('columns', `the conflict key's ${unkeyed} is not among the data's columns`);
  return columns;
}

/**
 * UNKNOWN_COLUMN for a name the data gives that the target does not have, saying what the target has and, for a CSV
 * header, what the header more likely is: fields split by another delimiter (`;`, a tab, `|`), or the first line of
 * data in a file without a header. The name as text that prints, cut short (it may be any bytes: a file that is not
 * what it says).
 */
export function unknownColumn(
  plan: ImportSettings,
  name: string,
  namedBy: ColumnsNamedBy,
  named: string[] = [],
): BatchError {
  const writable = [...plan.target.columns.values()].filter((c) => !c.generatedAlways).map((c) => c.name);
  const listed = writable.length > LISTED ? `${writable.slice(0, LISTED).join(', ')}, …` : writable.join(', ');
  const by = { header: 'the header', columns: 'the parameter columns', keys: "a record's keys" }[namedBy];
  const message = [`${plan.target.name} has no column ${quoted(name, 60)}, which ${by} names.`];
  message.push(`Its columns are ${listed}.`);
  if (namedBy === 'header') message.push(headerHint(plan, name, named, writable));
  return new BatchError('UNKNOWN_COLUMN', message.join(' ').trim(), {
    column: name.slice(0, 100),
    columns: writable.slice(0, LISTED),
  });
}

const DELIMITERS: [string, string, string][] = [
  // the character, as the query sends it, as the command line's --delimiter takes it
  [';', ';', "';'"],
  ['\t', '%09', "$'\\t'"],
  ['|', '%7C', "'|'"],
  [',', ',', ','],
];

/** What a header that names no such column more likely is, and what to send instead; empty when nothing tells. */
function headerHint(plan: ImportSettings, name: string, named: string[], writable: string[]): string {
  const other = DELIMITERS.find(([char]) => char !== plan.delimiter && name.includes(char));
  if (other) {
    const [char, query, flag] = other;
    const shown = char === '\t' ? 'tabs' : `"${char}"`;
    return `The header looks separated by ${shown}: send delimiter=${query} (the command line: --delimiter ${flag}).`;
  }
  if (named.some((field) => plan.target.columns.has(field))) return '';
  const columns = named.length === writable.length ? writable.join(',') : '<a,b,…>';
  return (
    'If the first line is data, not a header: send header=false, with columns= naming the columns of its fields in ' +
    `order (the command line: --no-header --columns ${columns}).`
  );
}
