import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiResponse } from '@nestjs/swagger';
import { ERROR_CODES, type ErrorCode, IBatchErrorResponse } from '../../interfaces/operation.interfaces';

export class ErrorResponseDto implements IBatchErrorResponse {
  @ApiProperty({ enum: ['error'] }) status: 'error';
  @ApiProperty({ enum: ERROR_CODES }) code: ErrorCode;
  @ApiProperty() message: string;
  @ApiPropertyOptional({ description: 'what was wrong, e.g. `{problems: [{field, message}]}` or `{retryAfterMs}`' })
  details?: unknown;
}

const DESCRIPTIONS: Record<number, string> = {
  400: 'VALIDATION_FAILED, UNKNOWN_TARGET or UNKNOWN_COLUMN',
  401: 'UNAUTHENTICATED: no or wrong API key',
  403: "FORBIDDEN: target not granted, another client's operation, or admin only",
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT: the body sent nothing for too long; nothing was stored',
  409: 'CONFLICT: wrong state',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED (details.retryAfterMs)',
  503: 'UNAVAILABLE: database unreachable; retry',
};

/** Documents the contract's error responses of an endpoint. */
export function ApiErrors(...statuses: number[]) {
  return applyDecorators(
    ...statuses.map((status) => ApiResponse({ status, description: DESCRIPTIONS[status], type: ErrorResponseDto })),
  );
}
