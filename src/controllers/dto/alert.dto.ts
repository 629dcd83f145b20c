import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayMinSize, IsArray, IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { IJobAlert, IJobAlertDelivery, JOB_ALERT_EXITS, type JobAlertExit } from '../../interfaces/job.interfaces';
import { NAME, NAME_MESSAGE } from './job.dto';
import { NoNulCharacter } from './no-nul-character';

export class JobAlertNameDto {
  @ApiProperty({ example: 'nightly-failures' })
  @IsString()
  @Matches(NAME, { message: `name ${NAME_MESSAGE}` })
  name: string;
}

export class JobAlertRequestDto {
  @ApiProperty({
    example: 'https://hooks.slack.com/services/T000/B000/XXXX',
    description: 'http or https, no user or password; called with POST {text, alert, event}',
  })
  @IsString()
  @MaxLength(2000)
  @NoNulCharacter()
  url: string;

  @ApiPropertyOptional({ type: String, nullable: true, example: 'copy', description: 'the job; every job when absent' })
  @IsOptional()
  @IsString()
  @Matches(NAME, { message: `job ${NAME_MESSAGE}` })
  job?: string | null;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    example: 'billing',
    description: "the client whose executions it is for; every client's when absent",
  })
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'client must be the name of a client' })
  client?: string | null;

  @ApiPropertyOptional({ enum: JOB_ALERT_EXITS, isArray: true, default: ['FAILED'] })
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(JOB_ALERT_EXITS.length)
  @IsIn(JOB_ALERT_EXITS, { each: true })
  on?: JobAlertExit[];
}

export class JobAlertDeliveryDto implements IJobAlertDelivery {
  @ApiProperty() executionId: string;
  @ApiProperty({ enum: ['PENDING', 'DELIVERED', 'FAILED'] }) status: 'PENDING' | 'DELIVERED' | 'FAILED';
  @ApiProperty({ description: 'calls made' }) attempts: number;
  @ApiProperty({ type: String, nullable: true, example: 'answered 503' }) lastError: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) deliveredAt: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true, description: 'while PENDING' })
  nextAttemptAt: string | null;
}

export class JobAlertDto implements IJobAlert {
  @ApiProperty() name: string;
  @ApiProperty() url: string;
  @ApiProperty({ type: String, nullable: true }) job: string | null;
  @ApiProperty({ type: String, nullable: true }) client: string | null;
  @ApiProperty({ enum: JOB_ALERT_EXITS, isArray: true }) on: JobAlertExit[];
  @ApiProperty({ format: 'date-time' }) createdAt: string;
  @ApiProperty({ format: 'date-time' }) updatedAt: string;
  @ApiProperty({ type: JobAlertDeliveryDto, nullable: true, description: 'its newest delivery' })
  lastDelivery: JobAlertDeliveryDto | null;
}
