import type { TargetTable } from '../../interfaces/catalog.interfaces';
import type { JobParameters } from '../../interfaces/job.interfaces';
import { invalidField } from '../batch-error';
import { sameColumns } from '../storage/catalog.service';
import type { ParameterSpec } from './job-definition';
import { namesOf } from './job-parameters';

/** The identifying parameter `mode` of a job that writes a target. */
export const MODE: ParameterSpec = {
  type: 'string',
  values: ['insert', 'upsert'],
  default: 'insert',
  description: 'how rows are written',
};

/** The identifying parameter `conflictKey` of a job that writes a target. */
export const CONFLICT_KEY: ParameterSpec = {
  type: 'names',
  description: 'upsert: a unique key of the target (default its primary key)',
};

/** An upsert's conflict key (the one given, or the target's primary key), checked to be a unique key; null to insert. */
export function conflictKeyOf(parameters: JobParameters, target: TargetTable): string[] | null {
  if (parameters.mode !== 'upsert') return null;
  const key = parameters.conflictKey === undefined ? target.primaryKey : namesOf(parameters.conflictKey);
  if (!key) throw invalidField('conflictKey', `is needed: ${target.name} has no primary key`);
  if (!target.uniqueKeys.some((unique) => sameColumns(unique, key)))
    throw invalidField('conflictKey', `is not a unique key of ${target.name}`);
  return key;
}
