import { ArgumentMetadata, ValidationPipe } from '@nestjs/common';
import { RpcParamtype } from '@nestjs/microservices/enums/rpc-paramtype.enum';
import { BatchError } from '../services/batch-error';
import { JsonNumber } from '../services/exact-json';
import { JobLaunchDto, JobLaunchRpcDto, ScheduleDto } from './dto/job.dto';
import { validationFailed } from './errors';
import { acceptedAsSent } from './validation-precheck';

/** Field names that class-transformer passes over, as a prototype's members: refused like any other unknown field. */
const RESERVED_FIELDS = new Set(['__proto__', 'constructor', 'prototype']);
/**
 * Rows of a target table, and a job's parameters and options: any name is theirs, so they are kept as sent and checked
 * by the service, against the catalog or the job's definition.
 */
const ROWS = new Set(['values', 'key', 'parameters', 'options']);

/** A row set aside: where it was (the keys from the request down to its holder, and its field) and the row itself. */
type Row = { path: string[]; holder: Record<string, unknown>; field: string; row: object };

/**
 * The DTOs' validation for both transports (class-validator; unknown fields refused). class-transformer rebuilds every
 * object it meets, dropping fields such as `constructor` or `__proto__` (or failing on them), so the rows of a request
 * are set aside while it runs and put back as sent; any other object of the request with such a field is refused.
 * A body that the DTO's constraints accept as it was sent is handed on as it is, checked field by field without
 * class-transformer (acceptedAsSent); the pipe's full way is for the others, and says why they are refused.
 */
export class RequestValidationPipe extends ValidationPipe {
  constructor() {
    super({ whitelist: true, forbidNonWhitelisted: true, transform: true, exceptionFactory: validationFailed });
  }

  async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (!isRequestBody(metadata)) return super.transform(value, metadata);
    if (metadata.metatype && acceptedAsSent(metadata.metatype, value)) return value;
    return this.transformWithRowsAside(value, metadata);
  }

  /** The full way for a request body: class-transformer and class-validator, with its rows set aside. */
  async transformWithRowsAside(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    const rows: Row[] = [];
    try {
      const field = setRowsAside(value, [], rows);
      if (field !== null)
        throw new BatchError('VALIDATION_FAILED', `${field}: property should not exist`, {
          problems: [{ field, message: 'property should not exist' }],
        });
      const dto = await super.transform(value, metadata).catch((error: unknown) => {
        throw JOB_BODIES.has(metadata.metatype) ? underParameters(error) : error;
      });
      for (const { path, field, row } of rows) {
        const holder = path.reduce<unknown>(
          (object, key) => (object as Record<string, unknown> | undefined)?.[key],
          dto,
        );
        if (holder !== null && typeof holder === 'object') (holder as Record<string, unknown>)[field] = row;
      }
      return dto;
    } finally {
      for (const { holder, field, row } of rows) holder[field] = row;
    }
  }
}

/** Bodies that launch a job: a field of their own they do not have is most likely a parameter put beside them. */
const JOB_BODIES = new Set<unknown>([JobLaunchDto, JobLaunchRpcDto, ScheduleDto]);

/** A launch refused for a field at its top level, saying where a job's parameters and options go. */
function underParameters(error: unknown): unknown {
  if (!(error instanceof BatchError) || error.code !== 'VALIDATION_FAILED') return error;
  const { problems } = error.details as { problems: { field: string; message: string }[] };
  const hinted = problems.map(({ field, message }) =>
    !field.includes('.') && message === `property ${field} should not exist`
      ? {
          field,
          message:
            `${message}: a job's parameters go under "parameters" ({"parameters": {"${field}": …}}), its options ` +
            `(chunkSize, skipLimit, …) under "options"`,
        }
      : { field, message },
  );
  return new BatchError('VALIDATION_FAILED', hinted.map((p) => `${p.field}: ${p.message}`).join('; '), {
    ...(error.details as object),
    problems: hinted,
  });
}

/** A REST body or query, or an RPC payload: what a caller wrote (not a context object of the transport). */
function isRequestBody({ type }: ArgumentMetadata): boolean {
  return type === 'body' || type === 'query' || (type as unknown) === RpcParamtype.PAYLOAD;
}

/** Replaces each row (an object under `values` or `key`) by an empty one, noting it; returns a reserved field's path, if any. */
function setRowsAside(value: unknown, path: string[], rows: Row[]): string | null {
  if (value === null || typeof value !== 'object') return null;
  const holder = value as Record<string, unknown>;
  for (const [name, child] of Object.entries(holder)) {
    if (RESERVED_FIELDS.has(name)) return [...path, name].join('.');
    if (ROWS.has(name) && !Array.isArray(holder) && child instanceof JsonNumber) {
      // no row but a number kept exactly, which class-transformer would rebuild as an object: checked as a number
      rows.push({ path, holder, field: name, row: child });
      holder[name] = 0;
      continue;
    }
    if (
      ROWS.has(name) &&
      !Array.isArray(holder) &&
      child !== null &&
      typeof child === 'object' &&
      !Array.isArray(child)
    ) {
      rows.push({ path, holder, field: name, row: child });
      holder[name] = {};
      continue;
    }
    const found = setRowsAside(child, [...path, name], rows);
    if (found !== null) return found;
  }
  return null;
}
