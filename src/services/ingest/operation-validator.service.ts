import { Injectable } from '@nestjs/common';
import type { ICreateBatchOperationRequest, JsonValue, RowValues } from '../../interfaces/operation.interfaces';
import { AppConfig } from '../../config/app-config';
import { BatchError } from '../batch-error';
import type { TargetColumn, TargetTable } from '../../interfaces/catalog.interfaces';
import { CatalogService, hasColumns, sameColumns } from '../storage/catalog.service';
import { columnValueProblem, incrementProblem, isNumericColumn } from './column-value';
import { Planning, planningOf } from './row-identity';
import type { AuthenticatedClient } from '../access/client.service';

/** An operation that passed every create-time check, with its target resolved to `schema.table`, and its planning. */
export interface ValidOperation extends Planning {
  target: string;
  type: ICreateBatchOperationRequest['type'];
  values: RowValues | null;
  key: RowValues | null;
  conflictKey: string[] | null;
  idempotencyKey: string | null;
  label: string | null;
  priority: number;
  notBefore: Date | null;
}

interface Problem {
  code: 'VALIDATION_FAILED' | 'UNKNOWN_COLUMN';
  field: string;
  message: string;
}

/** Checks an operation against the live catalog and the client's grants (docs/api.md#operations). */
@Injectable()
export class OperationValidator {
  constructor(
    private readonly catalog: CatalogService,
    private readonly config: AppConfig,
  ) {}

  /**
   * Validates the operations of one request, in order; the first invalid one fails the request (its error names
   * its index when there are several). Each target is looked up once per request, again only for a column the
   * cached catalog does not know yet.
   */
  async validateAll(client: AuthenticatedClient, requests: ICreateBatchOperationRequest[]): Promise<ValidOperation[]> {
    const targets = new Map<string, TargetTable | null>();
    const valid: ValidOperation[] = [];
    const latestNotBefore = Date.now() + this.config.limits.notBeforeMaxDays * 86_400_000;
    for (const [index, request] of requests.entries()) {
      const columns = [
        ...Object.keys(request.values ?? {}),
        ...Object.keys(request.key ?? {}),
        ...(request.conflictKey ?? []),
      ];
      try {
        let target = targets.get(request.target);
        if (target === undefined || (target !== null && !hasColumns(target, columns))) {
          target = await this.catalog.findWithColumns(request.target, columns);
          targets.set(request.target, target);
        }
        valid.push(validate(client, request, target, latestNotBefore));
      } catch (error) {
        if (error instanceof BatchError && requests.length > 1) {
          throw new BatchError(error.code, `operations[${index}]: ${error.message}`, {
            index,
            ...(error.details as object),
          });
        }
        throw error;
      }
    }
    return valid;
  }
}

function validate(
  client: AuthenticatedClient,
  request: ICreateBatchOperationRequest,
  target: TargetTable | null,
  latestNotBefore: number,
): ValidOperation {
  const notBefore = request.notBefore === undefined ? null : new Date(request.notBefore);
  if (notBefore && notBefore.getTime() < EARLIEST_INSTANT)
    throw new BatchError('VALIDATION_FAILED', 'notBefore is before the year 1 (UTC), which PostgreSQL cannot hold');
  if (notBefore && !(notBefore.getTime() <= latestNotBefore)) {
    throw new BatchError(
      'VALIDATION_FAILED',
      `notBefore is further ahead than BATCH_NOT_BEFORE_MAX_DAYS allows (until ${new Date(latestNotBefore).toISOString()})`,
    );
  }
  if (!target) throw new BatchError('UNKNOWN_TARGET', `Unknown target "${request.target}"`, { target: request.target });
  if (!client.mayWrite(target.name)) {
    throw new BatchError('FORBIDDEN', `Client "${client.name}" is not granted target "${target.name}"`, {
      target: target.name,
    });
  }
  const problems = checkShape(target, request);
  if (problems.length > 0) {
    const unknown = problems.find((p) => p.code === 'UNKNOWN_COLUMN');
    const first = unknown ?? problems[0];
    throw new BatchError(first.code, first.message, { target: target.name, problems });
  }
  const row = {
    type: request.type,
    values: request.values ?? null,
    key: request.key ?? null,
    conflictKey: request.type === 'upsert' ? (request.conflictKey ?? target.primaryKey) : null,
  };
  return {
    target: target.name,
    ...row,
    ...planningOf(target, row),
    idempotencyKey: request.idempotencyKey ?? null,
    label: request.label ?? null,
    priority: request.priority ?? 0,
    notBefore,
  };
}

/** 0001-01-01T00:00:00Z: an earlier instant is a year before 1 in UTC, which a timestamptz without BC cannot take. */
const EARLIEST_INSTANT = new Date('0001-01-01T00:00:00Z').getTime();

/** PostgreSQL's own limit of columns per table. */
export const MAX_COLUMNS = 1600;

/** Every reason the operation cannot be applied as sent; empty when it can. */
export function checkShape(target: TargetTable, request: ICreateBatchOperationRequest): Problem[] {
  const tooWide = (['values', 'key'] as const)
    .filter((section) => Object.keys(request[section] ?? {}).length > MAX_COLUMNS)
    .map((section) => invalid(section, `"${section}" names more than ${MAX_COLUMNS} columns`));
  if (tooWide.length > 0) return tooWide;
  const problems = [...sectionProblems(request), ...columnProblems(target, request)];
  return problems.length > 0 ? problems : keyProblems(target, request);
}

function invalid(field: string, message: string): Problem {
  return { code: 'VALIDATION_FAILED', field, message };
}

function unknownColumn(field: string, name: string, target: TargetTable): Problem {
  return { code: 'UNKNOWN_COLUMN', field, message: `Unknown column "${name}" on target "${target.name}"` };
}

/** The sections the type needs given, and none it does not take. */
function sectionProblems({ type, values, key, conflictKey }: ICreateBatchOperationRequest): Problem[] {
  const problems: Problem[] = [];
  const needsValues = type !== 'delete';
  const needsKey = type === 'update' || type === 'delete' || type === 'increment';
  if (needsValues && (!values || Object.keys(values).length === 0))
    problems.push(invalid('values', `${type} needs at least one column in "values"`));
  if (!needsValues && values !== undefined) problems.push(invalid('values', 'delete takes no "values"'));
  if (needsKey && (!key || Object.keys(key).length === 0)) problems.push(invalid('key', `${type} needs a "key"`));
  if (!needsKey && key !== undefined) problems.push(invalid('key', `${type} takes no "key"; it writes "values"`));
  if (type !== 'upsert' && conflictKey !== undefined)
    problems.push(invalid('conflictKey', 'only upsert takes a "conflictKey"'));
  return problems;
}

/** Each column of `values` and `key`: one of the target's, and its value one the column takes. */
function columnProblems(target: TargetTable, request: ICreateBatchOperationRequest): Problem[] {
  const problems: Problem[] = [];
  for (const section of ['values', 'key'] as const) {
    for (const [name, value] of Object.entries(request[section] ?? {})) {
      const column = target.columns.get(name);
      if (!column) {
        problems.push(unknownColumn(`${section}.${name}`, name, target));
        continue;
      }
      const increment = section === 'values' && request.type === 'increment';
      const problem =
        valueProblem(column, value, section === 'key' || increment) ?? (increment ? incrementProblem(value) : null);
      if (problem) problems.push(invalid(`${section}.${name}`, `Column "${name}" ${problem}`));
      if (section === 'values' && column.generatedAlways)
        problems.push(invalid(`values.${name}`, `Column "${name}" is generated and cannot be written`));
      if (increment && !isNumericColumn(column))
        problems.push(invalid(`values.${name}`, `Column "${name}" is not numeric and cannot be incremented`));
    }
  }
  return problems;
}

/** The key a unique key of the target; an insert's or upsert's required columns given; an upsert's conflict key. */
function keyProblems(target: TargetTable, { type, values, key, conflictKey }: ICreateBatchOperationRequest): Problem[] {
  const problems: Problem[] = [];
  const mustBeUnique = (field: string) =>
    invalid(
      field,
      `"${field}" must name exactly the primary key or one unique key of "${target.name}": ${describeKeys(target)}`,
    );
  if (key && !target.uniqueKeys.some((k) => sameColumns(k, Object.keys(key)))) problems.push(mustBeUnique('key'));
  if (type === 'insert' || type === 'upsert') {
    for (const column of target.columns.values())
      if (column.notNull && !column.hasDefault && !Object.hasOwn(values!, column.name))
        problems.push(invalid(`values.${column.name}`, `Column "${column.name}" is required`));
  }
  if (type !== 'upsert') return problems;
  const conflictColumns = conflictKey ?? target.primaryKey;
  const unknown = conflictColumns?.find((c) => !target.columns.has(c));
  if (!conflictColumns)
    problems.push(invalid('conflictKey', `"${target.name}" has no primary key; give a "conflictKey"`));
  else if (unknown !== undefined) problems.push(unknownColumn('conflictKey', unknown, target));
  else if (!target.uniqueKeys.some((k) => sameColumns(k, conflictColumns))) problems.push(mustBeUnique('conflictKey'));
  else
    for (const c of conflictColumns)
      if (!Object.hasOwn(values!, c) || values![c] === null)
        problems.push(invalid(`values.${c}`, `Column "${c}" of the conflict key needs a value`));
  return problems;
}

function valueProblem(column: TargetColumn, value: JsonValue, notNull: boolean): string | null {
  if (value === null) return notNull || column.notNull ? 'cannot be null' : null;
  return columnValueProblem(column, value);
}

function describeKeys(target: TargetTable): string {
  return target.uniqueKeys.length === 0
    ? 'it has none'
    : target.uniqueKeys.map((k) => `(${k.join(', ')})`).join(' or ');
}
