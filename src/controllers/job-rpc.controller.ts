import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  IJobDefinitionList,
  IJobExecution,
  IJobExecutionList,
  IJobRejectList,
  JOB_PATTERNS,
} from '../interfaces/job.interfaces';
import { AuthenticatedClient } from '../services/access/client.service';
import { JobOperator } from '../services/jobs/job-operator.service';
import { Caller } from './auth';
import { JobExecutionIdDto, JobExecutionListRpcDto, JobLaunchRpcDto, JobRejectsRpcDto } from './dto/job.dto';

/** The RPC patterns of jobs (docs/api.md#patterns), as their REST endpoints. */
@Controller()
export class JobRpcController {
  constructor(private readonly operator: JobOperator) {}

  @MessagePattern(JOB_PATTERNS.listJobs)
  listJobs(): IJobDefinitionList {
    return { jobs: this.operator.listJobs() };
  }

  @MessagePattern(JOB_PATTERNS.launchJob)
  launch(@Caller() client: AuthenticatedClient, @Payload() dto: JobLaunchRpcDto): Promise<IJobExecution> {
    return this.operator.launch(client, dto.job, dto.parameters, dto.options);
  }

  @MessagePattern(JOB_PATTERNS.listJobExecutions)
  list(@Caller() client: AuthenticatedClient, @Payload() dto: JobExecutionListRpcDto): Promise<IJobExecutionList> {
    return this.operator.list(client, dto);
  }

  @MessagePattern(JOB_PATTERNS.getJobExecution)
  get(@Caller() client: AuthenticatedClient, @Payload() { id }: JobExecutionIdDto): Promise<IJobExecution> {
    return this.operator.get(client, id);
  }

  @MessagePattern(JOB_PATTERNS.stopJobExecution)
  stop(@Caller() client: AuthenticatedClient, @Payload() { id }: JobExecutionIdDto): Promise<IJobExecution> {
    return this.operator.stop(client, id);
  }

  @MessagePattern(JOB_PATTERNS.restartJobExecution)
  restart(@Caller() client: AuthenticatedClient, @Payload() { id }: JobExecutionIdDto): Promise<IJobExecution> {
    return this.operator.restart(client, id);
  }

  @MessagePattern(JOB_PATTERNS.abandonJobExecution)
  abandon(@Caller() client: AuthenticatedClient, @Payload() { id }: JobExecutionIdDto): Promise<IJobExecution> {
    return this.operator.abandon(client, id);
  }

  @MessagePattern(JOB_PATTERNS.getJobRejects)
  rejects(@Caller() client: AuthenticatedClient, @Payload() dto: JobRejectsRpcDto): Promise<IJobRejectList> {
    return this.operator.rejects(client, dto.id, dto.limit, dto.cursor);
  }
}
