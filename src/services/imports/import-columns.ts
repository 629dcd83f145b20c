import { BatchError, invalidField } from '../batch-error';
import type { ImportSettings } from './formats/record-format';

/**
 * The columns a CSV header (or the `columns` parameter) names, checked against the target: each a writable column,
 * none twice, every NOT NULL column without a default among them, and for an upsert its conflict key.
 */
export function checkColumns(plan: ImportSettings, columns: string[]): string[] {
  const { target } = plan;
  const seen = new Set<string>();
  for (const name of columns) {
    const column = target.columns.get(name);
    if (!column) throw new BatchError('UNKNOWN_COLUMN', `${target.name} has no column ${name}`, { column: name });
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
