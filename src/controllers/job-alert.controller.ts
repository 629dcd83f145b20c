import { Body, Controller, Delete, Get, HttpCode, Param, Put } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import { JobAlerts } from '../services/jobs/job-alerts';
import { AdminOnly } from './auth';
import { JobAlertDto, JobAlertNameDto, JobAlertRequestDto } from './dto/alert.dto';
import { ApiErrors } from './dto/error.dto';

/**
 * Job alerts (admin; docs/api.md#job-alerts): webhooks called when an execution ends FAILED, or COMPLETED_WITH_SKIPS
 * when asked. Admin-only, so that the service only ever calls URLs an admin chose.
 */
@ApiTags('jobs')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 403, 429, 503)
@AdminOnly()
@Controller('api/jobs/alerts')
export class JobAlertController {
  constructor(private readonly alerts: JobAlerts) {}

  @Put(':name')
  @ApiOperation({ summary: 'Create or replace an alert: executions that end after this answers are matched with it' })
  @ApiOkResponse({ type: JobAlertDto })
  @ApiErrors(400, 404)
  put(@Param() { name }: JobAlertNameDto, @Body() dto: JobAlertRequestDto): Promise<JobAlertDto> {
    return this.alerts.put(name, dto);
  }

  @Get()
  @ApiOperation({ summary: 'All alerts, each with its newest delivery' })
  @ApiOkResponse({ type: [JobAlertDto] })
  list(): Promise<JobAlertDto[]> {
    return this.alerts.list();
  }

  @Delete(':name')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete an alert and the deliveries it is still owed' })
  @ApiNoContentResponse()
  @ApiErrors(404)
  delete(@Param() { name }: JobAlertNameDto): Promise<void> {
    return this.alerts.delete(name);
  }
}
