import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { RmqContext } from '@nestjs/microservices';
import { ValidationError } from 'class-validator';
import type { Request, Response } from 'express';
import { Observable, throwError } from 'rxjs';
import { BatchError, toBatchError } from '../services/batch-error';
import { MAX_BULK_OPERATIONS } from './dto/operation.dto';
import { rpcRequestId, setRpcOutcome } from './rpc-server';

/**
 * ValidationPipe's errors as VALIDATION_FAILED, one detail per field; more operations in one request than the
 * bulk limit is PAYLOAD_TOO_LARGE.
 */
export function validationFailed(errors: ValidationError[]): BatchError {
  const problems = flatten(errors);
  const message =
    problems
      .map((p) => `${p.field}: ${p.message}`)
      .join('; ')
      .slice(0, 2000) || 'Invalid request';
  const tooMany = errors.some(
    (e) => e.property === 'operations' && Array.isArray(e.value) && e.value.length > MAX_BULK_OPERATIONS,
  );
  return new BatchError(tooMany ? 'PAYLOAD_TOO_LARGE' : 'VALIDATION_FAILED', message, {
    problems: problems.slice(0, 100),
  });
}

function flatten(errors: ValidationError[], prefix = ''): { field: string; message: string }[] {
  return errors.flatMap((error) => {
    const field = prefix ? `${prefix}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

const HTTP_CODES: Record<number, BatchError['code']> = {
  400: 'VALIDATION_FAILED',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
  503: 'UNAVAILABLE',
};

/**
 * The headers an error's HTTP answer carries besides its body: when to try again (Retry-After, in whole seconds, as
 * details.retryAfterMs says in milliseconds), and for a request whose body stalled, that its connection is closed
 * (the rest of such a body is not waited for).
 */
export function httpHeadersOf(error: BatchError): [string, string][] {
  const retryAfterMs = (error.details as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  if (error.code === 'RATE_LIMITED' && typeof retryAfterMs === 'number')
    return [['Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000)))]];
  if (error.code === 'REQUEST_TIMEOUT') return [['Connection', 'close']];
  return [];
}

/** Turns anything thrown into the contract's error shape: JSON body over REST, `err` over RPC. */
@Catch()
export class BatchErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger(BatchErrorFilter.name);

  catch(exception: unknown, host: ArgumentsHost): Observable<never> | void {
    const error = this.toBatchError(exception);
    const rpc = host.getType() === 'rpc' ? host.switchToRpc().getContext<RmqContext>() : undefined;
    if (error.code === 'INTERNAL') {
      const requestId = rpc ? rpcRequestId(rpc) : host.switchToHttp().getRequest<Request>().id;
      this.logger.error(
        { requestId },
        exception instanceof Error ? (exception.stack ?? exception.message) : String(exception),
      );
    }
    if (rpc) {
      setRpcOutcome(rpc, error.code);
      return throwError(() => error.toResponse());
    }
    const response = host.switchToHttp().getResponse<Response>();
    for (const [name, value] of httpHeadersOf(error)) response.setHeader(name, value);
    response.status(error.httpStatus).json(error.toResponse());
  }

  private toBatchError(exception: unknown): BatchError {
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const code = HTTP_CODES[status] ?? (status < 500 ? 'VALIDATION_FAILED' : 'INTERNAL');
      return new BatchError(code, exception.message);
    }
    const bodyParser = exception as { type?: string; status?: number; message?: string };
    if (bodyParser?.type === 'entity.too.large') return new BatchError('PAYLOAD_TOO_LARGE', 'Request body too large');
    if (bodyParser?.type === 'entity.parse.failed') return new BatchError('VALIDATION_FAILED', 'Malformed JSON body');
    return toBatchError(exception);
  }
}
