import { createHash } from 'node:crypto';
import type { JobParameters, JobParameterValue } from '../../interfaces/job.interfaces';
import { BatchError } from '../batch-error';
import { JsonNumber, numberLiteral, stringifyJson } from '../exact-json';
import type { JobDefinition, ParameterSpec } from './job-definition';
import { isTimestampText } from '../ingest/column-value';

/** The identifying parameter a schedule's ticks add (the tick's time); any job takes it. */
export const SCHEDULED_AT = 'scheduledAt';
const SCHEDULED_AT_SPEC: ParameterSpec = { type: 'timestamp', description: "a schedule's tick (UTC)" };

const MAX_TEXT = 1000;
const MAX_MAPPING_ENTRIES = 1600;
/** A name of a column: 1 to 63 characters, no NUL. */
function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 63 && !value.includes('\u0000');
}

/**
 * A launch's parameters and options checked against the job's definition: unknown names, wrong types, values out of
 * range and missing required parameters are VALIDATION_FAILED, every problem named. Returns them as given (the
 * execution echoes them so); the job runs with them and the defaults (withDefaults).
 */
export function checkLaunch(
  definition: JobDefinition,
  parameters: unknown,
  options: unknown,
): { parameters: JobParameters; options: JobParameters } {
  const problems: { field: string; message: string }[] = [];
  const params = checkAll(
    new Map([...definition.parameters, [SCHEDULED_AT, SCHEDULED_AT_SPEC]]),
    parameters,
    'parameters',
    problems,
  );
  const opts = checkAll(definition.options, options, 'options', problems);
  if (problems.length > 0) {
    throw new BatchError(
      'VALIDATION_FAILED',
      problems
        .map((p) => `${p.field}: ${p.message}`)
        .join('; ')
        .slice(0, 2000),
      { problems: problems.slice(0, 100) },
    );
  }
  return { parameters: params, options: opts };
}

function checkAll(
  specs: Map<string, ParameterSpec>,
  given: unknown,
  what: string,
  problems: { field: string; message: string }[],
): JobParameters {
  const object = given ?? {};
  if (typeof object !== 'object' || Array.isArray(object) || object instanceof JsonNumber) {
    problems.push({ field: what, message: 'must be a JSON object' });
    return {};
  }
  const values: JobParameters = {};
  for (const [name, value] of Object.entries(object)) {
    const spec = specs.get(name);
    if (!spec) {
      problems.push({ field: `${what}.${name.slice(0, 100)}`, message: `is not a ${what.slice(0, -1)} of this job` });
      continue;
    }
    const problem = valueProblem(spec, value);
    if (problem) problems.push({ field: `${what}.${name}`, message: problem });
    else values[name] = value as JobParameterValue;
  }
  for (const [name, spec] of specs)
    if (spec.required && !(name in object)) problems.push({ field: `${what}.${name}`, message: 'is required' });
  return values;
}

/** Values as given, and the defaults of those not given. */
export function withDefaults(specs: Map<string, ParameterSpec>, values: JobParameters): JobParameters {
  const all = { ...values };
  for (const [name, spec] of specs) if (!(name in all) && spec.default !== undefined) all[name] = spec.default;
  return all;
}

function valueProblem(spec: ParameterSpec, value: unknown): string | null {
  switch (spec.type) {
    case 'string':
      if (!isText(value)) return `must be a string of 1 to ${MAX_TEXT} characters without NUL`;
      return spec.values && !spec.values.includes(value) ? `must be one of ${spec.values.join(', ')}` : null;
    case 'integer':
      if (!Number.isSafeInteger(value)) return 'must be an integer';
      return rangeProblem(spec, value as number);
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return 'must be a number';
      return rangeProblem(spec, value);
    case 'boolean':
      return typeof value === 'boolean' ? null : 'must be true or false';
    case 'key':
      return isText(value) || (typeof value === 'number' && Number.isFinite(value)) || value instanceof JsonNumber
        ? null
        : 'must be a number or a string';
    case 'timestamp':
      return isText(value) && isTimestampText(value)
        ? null
        : 'must be a timestamp (ISO 8601: 2026-11-21 or 2026-11-21T06:00:00Z)';
    case 'names':
      return namesOf(value)
        ? null
        : `must be a list of 1 to ${MAX_NAMES} names (1 to 63 characters), or them comma-separated`;
    case 'mapping':
      return mappingProblem(value);
  }
}

const MAX_NAMES = 64;

/** A list of names (columns): an array of them, or them comma-separated in one string; null when it is neither. */
export function namesOf(value: unknown): string[] | null {
  const names = typeof value === 'string' ? value.split(',').map((name) => name.trim()) : value;
  if (!Array.isArray(names) || names.length === 0 || names.length > MAX_NAMES) return null;
  return names.every(isName) ? (names as string[]) : null;
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TEXT && !value.includes('\u0000');
}

function rangeProblem(spec: ParameterSpec, value: number): string | null {
  if (spec.min !== undefined && value < spec.min) return `must be at least ${spec.min}`;
  if (spec.max !== undefined && value > spec.max) return `must be at most ${spec.max}`;
  return null;
}

function mappingProblem(value: unknown): string | null {
  const message = `must be an object of up to ${MAX_MAPPING_ENTRIES} names (1 to 63 characters) to names`;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof JsonNumber)
    return message;
  const entries = Object.entries(value);
  if (entries.length === 0 || entries.length > MAX_MAPPING_ENTRIES) return message;
  return entries.every(([k, v]) => isName(k) && isName(v)) ? null : message;
}

/**
 * What identifies an instance of `job` with these parameters: a hash of them and the defaults of those not given, in a
 * canonical form (keys sorted, a timestamp as its instant in UTC, a key bound as text), so that the same parameters written differently
 * (a default given or left out) are the same instance.
 */
export function instanceIdentity(definition: JobDefinition, given: JobParameters): string {
  const parameters = withDefaults(definition.parameters, given);
  const canonical = Object.keys(parameters)
    .sort()
    .map((name) => {
      const spec = definition.parameters.get(name) ?? SCHEDULED_AT_SPEC;
      return [name, canonicalValue(spec, parameters[name])];
    });
  return createHash('sha256')
    .update(stringifyJson([definition.name, canonical]))
    .digest('hex');
}

function canonicalValue(spec: ParameterSpec, value: JobParameterValue): unknown {
  if (spec.type === 'timestamp' && typeof value === 'string') return new Date(value).toISOString();
  if (spec.type === 'names') return namesOf(value);
  if (spec.type === 'key') return keyText(value);
  if (spec.type === 'mapping' && value !== null && typeof value === 'object')
    return Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return value;
}

/** A key bound (`from`, `to`) as the text PostgreSQL casts to the key column's type. */
export function keyText(value: JobParameterValue | undefined): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'number' || (value as unknown) instanceof JsonNumber) return numberLiteral(value as number);
  return String(value);
}
