import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import {
  IExitStatus,
  IJobDefinition,
  IJobExecution,
  IJobParameterDescription,
  IJobProgress,
  IJobReject,
  IJobSchedule,
  IStepExecution,
  JOB_STATUSES,
  type JobParameters,
  type JobParameterType,
  type JobStatus,
} from '../../interfaces/job.interfaces';
import { StepCountsDto } from './chunk.dto';
import { IsJsonObject } from './json-object';

export const NAME = /^[A-Za-z0-9_.-]{1,100}$/;
export const NAME_MESSAGE = 'must be 1..100 letters, digits or _.-';

export class JobNameDto {
  @ApiProperty({ example: 'copy' })
  @IsString()
  @Matches(NAME, { message: `job ${NAME_MESSAGE}` })
  job: string;
}

export class JobLaunchDto {
  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    example: { source: 'public.orders', target: 'public.orders_archive' },
    description: "identifying: another value is another job instance (GET /api/jobs lists each job's)",
  })
  @IsOptional()
  @IsJsonObject()
  parameters?: JobParameters;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    example: { chunkSize: 10000 },
    description: 'not identifying: chunkSize, skipLimit, …',
  })
  @IsOptional()
  @IsJsonObject()
  options?: JobParameters;
}

/** launchJob over RPC: the job's name with the launch. */
export class JobLaunchRpcDto extends JobLaunchDto {
  @ApiProperty({ example: 'copy' })
  @IsString()
  @Matches(NAME, { message: `job ${NAME_MESSAGE}` })
  job: string;
}

export class JobExecutionIdDto {
  @ApiProperty({ example: '7', description: 'decimal string' })
  @IsString()
  @Matches(/^\d{1,18}$/, { message: 'id must be a decimal string' })
  id: string;
}

export class JobExecutionListQueryDto {
  @ApiPropertyOptional({ example: 'copy' })
  @IsOptional()
  @IsString()
  @Matches(NAME, { message: `job ${NAME_MESSAGE}` })
  job?: string;

  @ApiPropertyOptional({ enum: JOB_STATUSES })
  @IsOptional()
  @IsIn(JOB_STATUSES)
  status?: JobStatus;

  @ApiPropertyOptional({ example: '3', description: "one job instance's executions, restarts included" })
  @IsOptional()
  @Matches(/^\d{1,18}$/, { message: 'instanceId must be a decimal string' })
  instanceId?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 500, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit?: number;

  @ApiPropertyOptional({ description: 'nextCursor of the page before' })
  @IsOptional()
  @Matches(/^\d{1,18}$/, { message: 'cursor must be a decimal string' })
  cursor?: string;
}

/** listJobExecutions over RPC. */
export class JobExecutionListRpcDto extends JobExecutionListQueryDto {}

export class JobRejectsQueryDto {
  @ApiPropertyOptional({ minimum: 1, maximum: 10000, default: 100 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(10_000)
  limit?: number;

  @ApiPropertyOptional({ description: 'nextCursor of the page before' })
  @IsOptional()
  @Matches(/^\d{1,18}$/, { message: 'cursor must be a decimal string' })
  cursor?: string;
}

/** getJobRejects over RPC. */
export class JobRejectsRpcDto extends JobRejectsQueryDto {
  @ApiProperty({ example: '7' })
  @IsString()
  @Matches(/^\d{1,18}$/, { message: 'id must be a decimal string' })
  id: string;
}

export class ScheduleNameDto {
  @ApiProperty({ example: 'nightly-archive' })
  @IsString()
  @Matches(NAME, { message: `name ${NAME_MESSAGE}` })
  name: string;
}

export class ScheduleDto {
  @ApiProperty({ example: 'copy' })
  @IsString()
  @Matches(NAME, { message: `job ${NAME_MESSAGE}` })
  job: string;

  @ApiProperty({ example: '0 3 * * *', description: 'five fields (minute first), or six (second first)' })
  @IsString()
  cron: string;

  @ApiPropertyOptional({ example: 'Europe/Berlin', default: 'UTC' })
  @IsOptional()
  @IsString()
  timeZone?: string;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'each tick adds scheduledAt' })
  @IsOptional()
  @IsJsonObject()
  parameters?: JobParameters;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true })
  @IsOptional()
  @IsJsonObject()
  options?: JobParameters;

  @ApiProperty({ example: 'billing', description: 'the name of the client the ticks are launched as' })
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'client must be the name of a client' })
  client: string;

  @ApiPropertyOptional({ default: 0, description: 'ticks missed while no worker ran are launched this far back' })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(366 * 24 * 3600)
  backfillSeconds?: number;

  @ApiPropertyOptional({ default: true, description: 'a disabled schedule is kept, and launches no tick' })
  @IsOptional()
  @IsBoolean()
  enabled?: boolean;
}

export class ExitStatusDto implements IExitStatus {
  @ApiProperty({ example: 'COMPLETED' }) code: string;
  @ApiProperty({ type: String, nullable: true }) description: string | null;
}

export class JobProgressDto implements IJobProgress {
  @ApiProperty({ example: 'rows' }) unit: string;
  @ApiProperty() done: number;
  @ApiProperty({ type: Number, nullable: true }) total: number | null;
  @ApiProperty({ description: '0 until a chunk of this execution committed' }) perSecond: number;
  @ApiProperty({ type: Number, nullable: true }) etaSeconds: number | null;
}

export class StepExecutionDto extends StepCountsDto implements IStepExecution {
  @ApiProperty() name: string;
  @ApiProperty({ enum: JOB_STATUSES }) status: JobStatus;
  @ApiProperty({ description: 'retries of an item’s processing or a chunk’s write, in the chunks committed' })
  retryCount: number;
  @ApiProperty({ type: ExitStatusDto, nullable: true }) exitStatus: ExitStatusDto | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) startedAt: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) endedAt: string | null;
}

export class JobExecutionDto implements IJobExecution {
  @ApiProperty({ example: '7' }) id: string;
  @ApiProperty({ example: 'copy' }) job: string;
  @ApiProperty() instanceId: string;
  @ApiProperty({ type: 'object', additionalProperties: true }) parameters: JobParameters;
  @ApiProperty({ type: 'object', additionalProperties: true }) options: JobParameters;
  @ApiProperty() client: string;
  @ApiProperty({ enum: JOB_STATUSES }) status: JobStatus;
  @ApiProperty({ type: ExitStatusDto, nullable: true }) exitStatus: ExitStatusDto | null;
  @ApiProperty({ format: 'date-time' }) createdAt: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) startedAt: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) endedAt: string | null;
  @ApiProperty({ description: "the instance's executions so far, this one included" }) startCount: number;
  @ApiProperty({
    description:
      "a restart would start: FAILED or STOPPED, its instance's newest execution, the job's start limit not reached",
  })
  restartable: boolean;
  @ApiProperty({ type: JobProgressDto }) progress: JobProgressDto;
  @ApiProperty({ type: [StepExecutionDto] }) steps: StepExecutionDto[];
}

export class JobExecutionListDto {
  @ApiProperty({ type: [JobExecutionDto] }) items: JobExecutionDto[];
  @ApiProperty({ type: String, nullable: true, description: 'pass as `cursor` for the next page; null on the last' })
  nextCursor: string | null;
}

export class JobParameterDto implements IJobParameterDescription {
  @ApiProperty() name: string;
  @ApiProperty({ enum: ['string', 'integer', 'number', 'boolean', 'key', 'names', 'mapping', 'timestamp'] })
  type: JobParameterType;
  @ApiProperty() required: boolean;
  @ApiPropertyOptional() default: JobParameters[string] | undefined;
  @ApiProperty() description: string;
}

export class JobDefinitionDto implements IJobDefinition {
  @ApiProperty() name: string;
  @ApiProperty() description: string;
  @ApiProperty({ type: [String] }) steps: string[];
  @ApiProperty({ type: [JobParameterDto] }) parameters: JobParameterDto[];
  @ApiProperty({ type: [JobParameterDto] }) options: JobParameterDto[];
  @ApiProperty() startLimit: number;
  @ApiProperty() restartable: boolean;
}

export class JobDefinitionListDto {
  @ApiProperty({ type: [JobDefinitionDto] }) jobs: JobDefinitionDto[];
}

export class JobRejectDto implements IJobReject {
  @ApiProperty({ type: Number, nullable: true }) line: number | null;
  @ApiProperty({ type: Number, nullable: true }) byteOffset: number | null;
  @ApiProperty({ type: String, nullable: true }) column: string | null;
  @ApiProperty({ example: '23505' }) code: string;
  @ApiProperty() message: string;
  @ApiProperty({ type: String, nullable: true }) record: string | null;
}

export class JobRejectListDto {
  @ApiProperty({ type: [JobRejectDto] }) items: JobRejectDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor: string | null;
}

export class JobScheduleDto implements IJobSchedule {
  @ApiProperty() name: string;
  @ApiProperty() job: string;
  @ApiProperty() cron: string;
  @ApiProperty() timeZone: string;
  @ApiProperty({ type: 'object', additionalProperties: true }) parameters: JobParameters;
  @ApiProperty({ type: 'object', additionalProperties: true }) options: JobParameters;
  @ApiProperty() client: string;
  @ApiProperty() backfillSeconds: number;
  @ApiProperty() enabled: boolean;
  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'null while disabled' })
  nextTickAt: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'the newest tick launched' })
  lastTickAt: string | null;
}
