import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Matches, Max, Min } from 'class-validator';

export class ChunkListQueryDto {
  @ApiPropertyOptional({ minimum: 1, maximum: 500, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @Matches(/^\d{1,18}$/, { message: 'cursor must be a decimal string' })
  cursor?: string;
}

export class StepCountsDto {
  @ApiProperty() readCount: number;
  @ApiProperty() writeCount: number;
  @ApiProperty() filterCount: number;
  @ApiProperty() readSkipCount: number;
  @ApiProperty() processSkipCount: number;
  @ApiProperty() writeSkipCount: number;
  @ApiProperty() commitCount: number;
  @ApiProperty() rollbackCount: number;
}

export class ChunkStepDto extends StepCountsDto {
  @ApiProperty() id: string;
  @ApiProperty({ example: 'insert public.reservations (id, seat)' }) name: string;
  @ApiProperty() target: string;
  @ApiProperty() type: string;
  @ApiProperty({ enum: ['COMPLETED', 'FAILED'] }) status: string;
  @ApiProperty({ type: String, nullable: true }) exitMessage: string | null;
  @ApiProperty({ format: 'date-time' }) startedAt: Date;
  @ApiProperty({ format: 'date-time' }) endedAt: Date;
}

export class ChunkResponseDto extends StepCountsDto {
  @ApiProperty() id: string;
  @ApiProperty({ enum: ['COMPLETED', 'FAILED'] }) status: string;
  @ApiProperty({ type: String, nullable: true }) exitMessage: string | null;
  @ApiProperty() worker: string;
  @ApiProperty({ format: 'date-time' }) startedAt: Date;
  @ApiProperty({ format: 'date-time' }) endedAt: Date;
  @ApiPropertyOptional({ type: [ChunkStepDto] }) steps?: ChunkStepDto[];
}

export class ChunkListDto {
  @ApiProperty({ type: [ChunkResponseDto] }) items: ChunkResponseDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor: string | null;
}
