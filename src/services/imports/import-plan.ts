import type { JobParameters } from '../../interfaces/job.interfaces';
import { BatchError, invalidField } from '../batch-error';
import { conflictKeyOf, namesOf } from '../jobs';
import type { CatalogService } from '../storage/catalog.service';
import { formatNamed } from './formats/formats';
import type { ImportSettings, RecordFormat } from './formats/record-format';

/** What an import runs with: its target, how the data set is written, and its records' format and settings. */
export interface ImportPlan extends ImportSettings {
  format: RecordFormat;
}

/** The launch's target and reading settings, checked: the contract's error for what is not right. */
export async function planOf(
  catalog: CatalogService,
  parameters: JobParameters,
  options: JobParameters,
): Promise<ImportPlan> {
  const target = await catalog.find(String(parameters.target));
  if (!target) throw new BatchError('UNKNOWN_TARGET', `No target table ${String(parameters.target)}`);
  const conflictKey = conflictKeyOf(parameters, target);
  const delimiter = String(options.delimiter ?? ',');
  const quote = String(options.quote ?? '"');
  for (const [name, char] of [
    ['delimiter', delimiter],
    ['quote', quote],
  ])
    if (Buffer.byteLength(char) !== 1 || char === '\n' || char === '\r')
      throw invalidField(name, 'must be one single-byte character other than a newline');
  if (delimiter === quote) throw invalidField('quote', 'must differ from the delimiter');
  // COPY refuses them only once it runs, each chunk again
  const nullText = options.null === undefined ? null : String(options.null);
  if (nullText !== null && /[\n\r]/.test(nullText)) throw invalidField('null', 'must not hold a newline');
  for (const [name, char] of [
    ['delimiter', delimiter],
    ['quote', quote],
  ])
    if (nullText?.includes(char)) throw invalidField('null', `must not hold the ${name} (${char})`);
  const columns =
    parameters.columns === undefined
      ? [...target.columns.values()].filter((c) => !c.generatedAlways).map((c) => c.name)
      : namesOf(parameters.columns)!;
  return {
    target,
    format: formatNamed(String(parameters.format)),
    conflictKey,
    header: options.header !== false,
    columns,
    delimiter,
    quote,
    nullText,
  };
}
