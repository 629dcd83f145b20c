import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Length,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateBy,
  ValidateNested,
} from 'class-validator';
import { isInstant } from '../../services/ingest/column-value';
import {
  ICreateBatchOperationRequest,
  ICreateBatchOperationResponse,
  IGetBatchOperationResponse,
  IOperationError,
  OPERATION_STATUSES,
  OPERATION_TYPES,
  type OperationStatus,
  type OperationType,
  type RowValues,
} from '../../interfaces/operation.interfaces';
import { IsJsonObject } from './json-object';
import { NoNulCharacter } from './no-nul-character';

export const MAX_BULK_OPERATIONS = 1000;

export class OperationCreateDto implements ICreateBatchOperationRequest {
  @ApiProperty({
    example: 'reservations',
    description: '`table` or `schema.table` in BATCH_TARGET_SCHEMAS, granted to the client',
  })
  @IsString()
  @Length(1, 129)
  target: string;

  @ApiProperty({ enum: OPERATION_TYPES, example: 'insert' })
  @IsIn(OPERATION_TYPES)
  type: OperationType;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    example: { id: 1, seat: '12A' },
    description: 'insert/upsert: the row; update: the columns to set; increment: column → numeric delta',
  })
  @IsOptional()
  @IsJsonObject()
  values?: RowValues;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    example: { id: 1 },
    description: 'update/delete/increment: exactly the primary key or one unique key',
  })
  @IsOptional()
  @IsJsonObject()
  key?: RowValues;

  @ApiPropertyOptional({ type: [String], description: 'upsert only: the unique key columns; default the primary key' })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(32)
  @IsString({ each: true })
  conflictKey?: string[];

  @ApiPropertyOptional({
    minLength: 1,
    maxLength: 200,
    description: 'a second create with the same key returns the first operation',
  })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  @NoNulCharacter()
  idempotencyKey?: string;

  @ApiPropertyOptional({ minimum: -100, maximum: 100, default: 0, description: 'higher is applied earlier' })
  @IsOptional()
  @IsInt()
  @Min(-100)
  @Max(100)
  priority?: number;

  @ApiPropertyOptional({
    format: 'date-time',
    description:
      'not applied before this time: an RFC 3339 date-time with a zone, at most BATCH_NOT_BEFORE_MAX_DAYS ahead',
  })
  @IsOptional()
  @ValidateBy({
    name: 'isInstant',
    validator: {
      validate: (value) => typeof value === 'string' && isInstant(value),
      defaultMessage: () => 'notBefore must be an RFC 3339 date-time with a time zone (2026-11-21T10:00:00Z)',
    },
  })
  notBefore?: string;

  @ApiPropertyOptional({ maxLength: 100, example: 'MARKETPLACE_DEAL', description: 'echoed back in notifications' })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  @NoNulCharacter()
  label?: string;
}

export class OperationsCreateDto {
  @ApiProperty({ type: [OperationCreateDto], minItems: 1, maxItems: MAX_BULK_OPERATIONS })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_BULK_OPERATIONS)
  @ValidateNested({ each: true })
  @Type(() => OperationCreateDto)
  operations: OperationCreateDto[];
}

export class OperationIdDto {
  @ApiProperty({ example: '1001', description: 'decimal string' })
  @IsString()
  @Matches(/^\d{1,18}$/, { message: 'id must be a decimal string' })
  id: string;
}

export class OperationListQueryDto {
  @ApiPropertyOptional({ enum: OPERATION_STATUSES })
  @IsOptional()
  @IsIn(OPERATION_STATUSES)
  status?: OperationStatus;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(129)
  @NoNulCharacter()
  target?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(100)
  @NoNulCharacter()
  label?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 500, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @ApiPropertyOptional({ description: 'the nextCursor of the previous page' })
  @IsOptional()
  @Matches(/^\d{1,18}$/, { message: 'cursor must be a decimal string' })
  cursor?: string;
}

export class OperationCreatedDto implements ICreateBatchOperationResponse {
  @ApiProperty({ example: '1001' }) id: string;
  @ApiProperty({ enum: OPERATION_STATUSES }) status: OperationStatus;
  @ApiProperty({ format: 'date-time' }) createdAt: string;
  @ApiProperty({ description: 'true when an earlier create with the same idempotency key (or request id) stored it' })
  duplicate: boolean;
}

export class OperationsCreatedDto {
  @ApiProperty({ type: [OperationCreatedDto] }) operations: OperationCreatedDto[];
}

export class OperationErrorDto implements IOperationError {
  @ApiProperty({ example: '23505', description: 'SQLSTATE for errors of the database' }) code: string;
  @ApiProperty() message: string;
}

export class OperationResponseDto implements IGetBatchOperationResponse {
  @ApiProperty({ example: '1001' }) id: string;
  @ApiProperty({ example: 'public.reservations' }) target: string;
  @ApiProperty({ enum: OPERATION_TYPES }) type: OperationType;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true }) values: RowValues | null;
  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true }) key: RowValues | null;
  @ApiProperty({ type: [String], nullable: true }) conflictKey: string[] | null;
  @ApiProperty({ type: String, nullable: true }) idempotencyKey: string | null;
  @ApiProperty({ type: String, nullable: true }) label: string | null;
  @ApiProperty() priority: number;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) notBefore: string | null;
  @ApiProperty({ enum: OPERATION_STATUSES }) status: OperationStatus;
  @ApiProperty() attempts: number;
  @ApiProperty({ type: Number, nullable: true }) rowsAffected: number | null;
  @ApiProperty({ type: OperationErrorDto, nullable: true }) error: OperationErrorDto | null;
  @ApiProperty({ type: String, nullable: true }) executionId: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt: string;
  @ApiProperty({ format: 'date-time' }) updatedAt: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) settledAt: string | null;
}

export class OperationListDto {
  @ApiProperty({ type: [OperationResponseDto] }) items: OperationResponseDto[];
  @ApiProperty({ type: String, nullable: true, description: 'pass as `cursor` for the next page; null on the last' })
  nextCursor: string | null;
}
