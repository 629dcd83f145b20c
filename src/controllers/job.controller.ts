import { Body, Controller, Delete, Get, Headers, HttpCode, Param, Post, Put, Query, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiProduces,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { AuthenticatedClient } from '../services/access/client.service';
import { JobOperator } from '../services/jobs/job-operator.service';
import { JobSchedules } from '../services/jobs/job-schedules.service';
import { AdminOnly, Caller } from './auth';
import { ApiErrors } from './dto/error.dto';
import { rejectsCsv } from './rejects-csv';
import {
  JobDefinitionListDto,
  JobExecutionDto,
  JobExecutionIdDto,
  JobExecutionListDto,
  JobExecutionListQueryDto,
  JobLaunchDto,
  JobNameDto,
  JobRejectListDto,
  JobRejectsQueryDto,
  JobScheduleDto,
  ScheduleDto,
  ScheduleNameDto,
} from './dto/job.dto';

/** Jobs (docs/api.md#jobs): launch, inspect and control executions; a client its own, an admin all. */
@ApiTags('jobs')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 429, 503)
@Controller('api/jobs')
export class JobController {
  constructor(private readonly operator: JobOperator) {}

  @Get()
  @ApiOperation({ summary: 'The jobs: their steps, parameters (identifying) and options, with types and defaults' })
  @ApiOkResponse({ type: JobDefinitionListDto })
  list(): JobDefinitionListDto {
    return { jobs: this.operator.listJobs() };
  }

  @Post(':job/executions')
  @HttpCode(202)
  @ApiOperation({ summary: 'Launch a job: a new execution of the instance its parameters identify' })
  @ApiAcceptedResponse({ type: JobExecutionDto })
  @ApiErrors(400, 403, 404, 409)
  launch(
    @Caller() client: AuthenticatedClient,
    @Param() { job }: JobNameDto,
    @Body() dto: JobLaunchDto,
  ): Promise<JobExecutionDto> {
    return this.operator.launch(client, job, dto.parameters, dto.options);
  }

  @Get('executions')
  @ApiOperation({ summary: 'Executions, newest first, keyset-paginated' })
  @ApiOkResponse({ type: JobExecutionListDto })
  @ApiErrors(400)
  executions(
    @Caller() client: AuthenticatedClient,
    @Query() query: JobExecutionListQueryDto,
  ): Promise<JobExecutionListDto> {
    return this.operator.list(client, query);
  }

  @Get('executions/:id')
  @ApiOperation({ summary: 'One execution, with its steps and progress' })
  @ApiOkResponse({ type: JobExecutionDto })
  @ApiErrors(404)
  get(@Caller() client: AuthenticatedClient, @Param() { id }: JobExecutionIdDto): Promise<JobExecutionDto> {
    return this.operator.get(client, id);
  }

  @Post('executions/:id/stop')
  @HttpCode(200)
  @ApiOperation({ summary: 'Stop at the next chunk boundary (STOPPING → STOPPED); one not started yet at once' })
  @ApiOkResponse({ type: JobExecutionDto })
  @ApiErrors(404, 409)
  stop(@Caller() client: AuthenticatedClient, @Param() { id }: JobExecutionIdDto): Promise<JobExecutionDto> {
    return this.operator.stop(client, id);
  }

  @Post('executions/:id/restart')
  @HttpCode(202)
  @ApiOperation({ summary: 'Restart a FAILED or STOPPED execution where it stopped: the new execution' })
  @ApiAcceptedResponse({ type: JobExecutionDto })
  @ApiErrors(400, 403, 404, 409)
  restart(@Caller() client: AuthenticatedClient, @Param() { id }: JobExecutionIdDto): Promise<JobExecutionDto> {
    return this.operator.restart(client, id);
  }

  @Post('executions/:id/abandon')
  @HttpCode(200)
  @ApiOperation({ summary: 'Abandon a FAILED or STOPPED execution: its instance never runs again' })
  @ApiOkResponse({ type: JobExecutionDto })
  @ApiErrors(404, 409)
  abandon(@Caller() client: AuthenticatedClient, @Param() { id }: JobExecutionIdDto): Promise<JobExecutionDto> {
    return this.operator.abandon(client, id);
  }

  @Get('executions/:id/rejects')
  @ApiOperation({ summary: 'The items an execution skipped, in order; `Accept: text/csv` for CSV' })
  @ApiProduces('application/json', 'text/csv')
  @ApiOkResponse({ type: JobRejectListDto })
  @ApiErrors(400, 404)
  async rejects(
    @Caller() client: AuthenticatedClient,
    @Param() { id }: JobExecutionIdDto,
    @Query() query: JobRejectsQueryDto,
    @Headers('accept') accept: string | undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<JobRejectListDto | string> {
    const page = await this.operator.rejects(client, id, query.limit, query.cursor);
    if (!accept?.includes('text/csv')) return page;
    response.type('text/csv');
    if (page.nextCursor) response.setHeader('x-next-cursor', page.nextCursor);
    return rejectsCsv(page.items);
  }
}

/** Schedules (admin): each tick launches its job as the schedule's client, once across all processes. */
@ApiTags('jobs')
@ApiSecurity('api-key')
@ApiBearerAuth()
@ApiErrors(401, 403, 429, 503)
@AdminOnly()
@Controller('api/jobs/schedules')
export class JobScheduleController {
  constructor(private readonly schedules: JobSchedules) {}

  @Put(':name')
  @ApiOperation({ summary: 'Create or replace a schedule; ticks are launched from the first one after this answers' })
  @ApiOkResponse({ type: JobScheduleDto })
  @ApiErrors(400, 404, 409)
  put(@Param() { name }: ScheduleNameDto, @Body() dto: ScheduleDto): Promise<JobScheduleDto> {
    return this.schedules.put(name, dto);
  }

  @Get()
  @ApiOperation({ summary: 'All schedules, with their next tick' })
  @ApiOkResponse({ type: [JobScheduleDto] })
  list(): Promise<JobScheduleDto[]> {
    return this.schedules.list();
  }

  @Delete(':name')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a schedule: no tick of it is launched after this answers' })
  @ApiNoContentResponse()
  @ApiErrors(404)
  delete(@Param() { name }: ScheduleNameDto): Promise<void> {
    return this.schedules.delete(name);
  }
}
