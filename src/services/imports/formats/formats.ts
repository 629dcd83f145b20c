import { invalidField } from '../../batch-error';
import { CSV } from './csv-format';
import { NDJSON } from './ndjson-format';
import type { RecordFormat } from './record-format';

/** The formats an import reads: a new one is listed here. */
export const FORMATS: readonly RecordFormat[] = [CSV, NDJSON];

export function formatNamed(name: string): RecordFormat {
  const format = FORMATS.find((f) => f.name === name);
  if (!format) throw invalidField('format', `must be one of ${FORMATS.map((f) => f.name).join(', ')}`);
  return format;
}

/** The format a content type means (its parameters aside), or undefined. */
export function formatOfContentType(contentType: string | undefined): RecordFormat | undefined {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return FORMATS.find((f) => f.contentTypes.includes(type));
}
