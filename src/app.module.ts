import { DynamicModule, Module, Provider } from '@nestjs/common';
import { APP_GUARD, DiscoveryModule } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { LoggerModule } from 'nestjs-pino';
import { AppConfig } from './config/app-config';
import { AuthGuard } from './controllers/auth';
import { ClientController } from './controllers/client.controller';
import { DashboardController } from './controllers/dashboard.controller';
import { ChunkController } from './controllers/chunk.controller';
import { OperationRpcController } from './controllers/operation-rpc.controller';
import { OperationController } from './controllers/operation.controller';
import { StatsController } from './controllers/stats.controller';
import { TargetController } from './controllers/target.controller';
import { ChunkListener, ChunkListeners } from './interfaces/chunk.interfaces';
import { LoggingChunkListener } from './services/engine/logging-chunk-listener';
import { OutboxWakeup, OutboxWakeupListener } from './services/outbox/outbox-wakeup';
import { NamedDatabases } from './services/storage/named-databases';
import { CatalogService } from './services/storage/catalog.service';
import { ChunkPlanner } from './services/engine/chunk-planner.service';
import { ChunkClaimer } from './services/engine/chunk-claimer.service';
import { ChunkStep } from './services/engine/chunk-step.service';
import { ChunkRepository } from './services/engine/chunk-repository';
import { PreparedChunks } from './services/engine/prepared-chunks';
import { TargetLedgers } from './services/storage/target-ledger';
import { StatementApplier } from './services/engine/statement-applier.service';
import { ClientService } from './services/access/client.service';
import { ClientChanges } from './services/access/client-changes';
import { Database, dataSourceOptions } from './services/storage/database';
import { ChunkService } from './services/queue-views/chunk.service';
import { OperationValidator } from './services/ingest/operation-validator.service';
import { IngestBuffer } from './services/ingest/ingest-buffer.service';
import { OperationService } from './services/ingest/operation.service';
import { OutboxRelay } from './services/outbox/outbox-relay.service';
import { PollerWakeup } from './services/engine/poller-wakeup.service';
import { Poller } from './services/engine/poller.service';
import { RateLimiter } from './services/access/rate-limiter.service';
import { RedisService } from './services/storage/redis.service';
import { RetentionSchedule, RetentionService } from './services/storage/retention.service';
import { StatsService } from './services/queue-views/stats.service';
import { PollerWakeupBroadcast, PollerWakeupSubscriber } from './services/engine/poller-wakeup-broadcast.service';
import { ChunkRetryPolicy, DataErrorSkipPolicy, ExponentialBackOffPolicy } from './services/engine/chunk-policies';
import { loggerParams } from './config/logging';
import { HealthController } from './controllers/health.controller';
import { MetricsController } from './controllers/metrics.controller';
import { IngestListener, IngestListeners } from './interfaces/ingest.interfaces';
import {
  BrokerHealthIndicator,
  DatabaseHealthIndicator,
  NamedDatabasesHealthIndicator,
  RedisHealthIndicator,
} from './services/observability/health-indicators';
import { Metrics, MetricsChunkListener, MetricsIngestListener } from './services/observability/metrics.service';
import { JobController, JobScheduleController } from './controllers/job.controller';
import { JobRpcController } from './controllers/job-rpc.controller';
import { ImportController } from './controllers/import.controller';
import { ImportFiles } from './services/imports/import-files';
import { ImportJob } from './services/imports/import-job';
import { ImportUploads } from './services/imports/import-uploads.service';
import { CopyJob } from './services/copy/copy-job';
import { UploadCapacity } from './services/imports/upload-capacity';
import { JobOperator } from './services/jobs/job-operator.service';
import { JobRegistry } from './services/jobs/job-registry.service';
import { JobLaunches } from './services/jobs/repository/job-launches';
import { JobLeases } from './services/jobs/repository/job-leases';
import { JobViews } from './services/jobs/repository/job-views';
import { StepExecutions } from './services/jobs/repository/step-executions';
import { JobRunner } from './services/jobs/job-runner.service';
import { JobSchedules, ScheduleLoop, ScheduleWakeup } from './services/jobs/job-schedules.service';
import { JobSignals, JobWakeup } from './services/jobs/job-signals';
import { JobWorker } from './services/jobs/job-worker.service';
import { MetricsJobListener } from './services/observability/metrics-job-listener';
import { TeamJobsModule } from './jobs/team-jobs.module';
import { JobAlertController } from './controllers/job-alert.controller';
import { JobAlerts } from './services/jobs/job-alerts';
import { AlertDeliveryLoop } from './services/outbox/alert-delivery';

/**
 * What only worker processes run (roles worker and all): the loops that apply chunks, run jobs, launch scheduled ones,
 * publish, call the job alerts' webhooks and clean up.
 */
const WORKER_LOOPS = [
  Poller,
  OutboxRelay,
  RetentionSchedule,
  PollerWakeupSubscriber,
  JobWorker,
  ScheduleLoop,
  AlertDeliveryLoop,
];

const CONTROLLERS = [
  OperationController,
  OperationRpcController,
  ChunkController,
  TargetController,
  StatsController,
  ClientController,
  DashboardController,
  HealthController,
  MetricsController,
  JobController,
  ImportController,
  JobScheduleController,
  JobAlertController,
  JobRpcController,
];

/** Storage, clients and their grants, what every part uses. */
const FOUNDATIONS: Provider[] = [
  { provide: APP_GUARD, useClass: AuthGuard },
  Database,
  NamedDatabases,
  TargetLedgers,
  CatalogService,
  ClientService,
  ClientChanges,
  RedisService,
  RateLimiter,
];

/** The operation queue: intake, the chunk engine and its listeners, notifications, retention, its read side. */
const QUEUE: Provider[] = [
  OperationValidator,
  OperationService,
  IngestBuffer,
  ChunkService,
  StatsService,
  PollerWakeup,
  OutboxWakeup,
  PollerWakeupBroadcast,
  ChunkClaimer,
  ChunkPlanner,
  StatementApplier,
  DataErrorSkipPolicy,
  ChunkRetryPolicy,
  ExponentialBackOffPolicy,
  LoggingChunkListener,
  OutboxWakeupListener,
  MetricsChunkListener,
  {
    provide: ChunkListeners,
    inject: [LoggingChunkListener, OutboxWakeupListener, MetricsChunkListener],
    useFactory: (...listeners: ChunkListener[]) => new ChunkListeners(listeners),
  },
  ChunkRepository,
  PreparedChunks,
  ChunkStep,
  RetentionService,
  MetricsIngestListener,
  {
    provide: IngestListeners,
    inject: [MetricsIngestListener, PollerWakeupBroadcast],
    useFactory: (...listeners: IngestListener[]) => new IngestListeners(listeners),
  },
];

const OBSERVABILITY: Provider[] = [
  Metrics,
  DatabaseHealthIndicator,
  NamedDatabasesHealthIndicator,
  BrokerHealthIndicator,
  RedisHealthIndicator,
];

/** The job framework, and the built-in jobs. */
const JOBS: Provider[] = [
  JobRegistry,
  JobLaunches,
  JobLeases,
  StepExecutions,
  JobViews,
  JobRunner,
  JobOperator,
  JobWakeup,
  JobSignals,
  JobSchedules,
  ScheduleWakeup,
  JobAlerts,
  MetricsJobListener,
  CopyJob,
  ImportJob,
  ImportFiles,
  ImportUploads,
  UploadCapacity,
];

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      // what a team's own jobs (TeamJobsModule) may inject besides the job framework: the database, its catalog, the
      // uploaded data sets
      global: true,
      exports: [Database, NamedDatabases, CatalogService, ImportFiles],
      imports: [
        TypeOrmModule.forRoot({ ...dataSourceOptions(config), migrationsRun: false }), // main.ts migrated first
        LoggerModule.forRoot(loggerParams(config)),
        TerminusModule,
        DiscoveryModule,
        TeamJobsModule,
      ],
      controllers: CONTROLLERS,
      providers: [
        { provide: AppConfig, useValue: config },
        ...FOUNDATIONS,
        ...QUEUE,
        ...OBSERVABILITY,
        ...JOBS,
        ...(config.role === 'api' ? [] : WORKER_LOOPS),
      ],
    };
  }
}
