import { ApiProperty, ApiPropertyOptional, OmitType, PartialType } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsInt,
  IsOptional,
  IsString,
  Length,
  Matches,
  Max,
  Min,
} from 'class-validator';
import { NoNulCharacter } from './no-nul-character';

export class ClientCreateDto {
  @ApiProperty({
    example: 'billing',
    description: "letters, digits, _ and -; the last word of its notifications' routing key",
  })
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'name must be 1..64 letters, digits, _ or -' })
  name: string;

  @ApiProperty({ example: ['reservations'], description: 'granted targets (`table`, `schema.table`) or `["*"]`' })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(1000)
  @IsString({ each: true })
  @Length(1, 129, { each: true })
  @NoNulCharacter({ each: true })
  targets: string[];

  @ApiPropertyOptional({
    example: ['reservations_archive'],
    description: 'tables its copy jobs may read (`table`, `schema.table`) or `["*"]`; none by default',
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(1000)
  @IsString({ each: true })
  @Length(1, 129, { each: true })
  @NoNulCharacter({ each: true })
  sources?: string[];

  @ApiPropertyOptional({ default: false })
  @IsOptional()
  @IsBoolean()
  admin?: boolean;

  @ApiPropertyOptional({
    type: Number,
    minimum: 1,
    nullable: true,
    description: 'operations per second; none (null) by default',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  rateLimitPerSecond?: number | null;
}

/**
 * What an admin may change of a client (PATCH): the fields given are set, the others kept. `rateLimitPerSecond: null`
 * removes the client's own limit (BATCH_DEFAULT_RATE_LIMIT applies again).
 */
export class ClientUpdateDto extends PartialType(OmitType(ClientCreateDto, ['name'] as const)) {}

export class ClientIdDto {
  @ApiProperty({ example: '2' })
  @Matches(/^\d{1,18}$/, { message: 'id must be a decimal string' })
  id: string;
}

export class ClientKeyDto {
  @ApiProperty() id: string;
  @ApiProperty() name: string;
  @ApiProperty({ description: 'shown only here; store it now' }) apiKey: string;
}

export class ClientResponseDto {
  @ApiProperty() id: string;
  @ApiProperty() name: string;
  @ApiProperty({ type: [String] }) targets: string[];
  @ApiProperty({ type: [String] }) sources: string[];
  @ApiProperty() admin: boolean;
  @ApiProperty({ type: Number, nullable: true }) rateLimitPerSecond: number | null;
  @ApiProperty({ format: 'date-time' }) createdAt: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) revokedAt: string | null;
}
