import { DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { LoggerModule } from 'nestjs-pino';
import { AppConfig } from './config/app-config';
import { AuthGuard } from './controllers/auth';
import { ClientController } from './controllers/client.controller';
import { DashboardController } from './controllers/dashboard.controller';
import { ExecutionController } from './controllers/execution.controller';
import { OperationRpcController } from './controllers/operation-rpc.controller';
import { OperationController } from './controllers/operation.controller';
import { StatsController } from './controllers/stats.controller';
import { TargetController } from './controllers/target.controller';
import {
  BackOffPolicy,
  ChunkListener,
  ChunkListeners,
  ItemProcessor,
  ItemReader,
  ItemWriter,
  RetryPolicy,
  SkipPolicy,
} from './interfaces/chunk.interfaces';
import { LoggingChunkListener, OutboxWakeupListener } from './services/chunk-listeners';
import { CatalogService } from './services/catalog.service';
import { ChunkProcessor } from './services/chunk-processor.service';
import { ChunkReader } from './services/chunk-reader.service';
import { ChunkStep } from './services/chunk-step.service';
import { JobRepository } from './services/job-repository';
import { ChunkWriter } from './services/chunk-writer.service';
import { ClientService } from './services/client.service';
import { Database, dataSourceOptions } from './services/database';
import { ExecutionService } from './services/execution.service';
import { OperationValidator } from './services/operation-validator.service';
import { IngestBuffer } from './services/ingest-buffer.service';
import { OperationService } from './services/operation.service';
import { OutboxRelay } from './services/outbox-relay.service';
import { OutboxWakeup, PollerWakeup } from './services/poller-wakeup.service';
import { Poller } from './services/poller.service';
import { RateLimiter } from './services/rate-limiter.service';
import { RedisService } from './services/redis.service';
import { RetentionService } from './services/retention.service';
import { StatsService } from './services/stats.service';
import { WakeupChannel } from './services/wakeup-channel.service';
import { ChunkRetryPolicy, DataErrorSkipPolicy, ExponentialBackOffPolicy } from './services/chunk-policies';
import { loggerParams } from './config/logging';
import { HealthController } from './controllers/health.controller';
import { MetricsController } from './controllers/metrics.controller';
import { IngestListener, IngestListeners } from './interfaces/ingest.interfaces';
import { BrokerHealthIndicator, DatabaseHealthIndicator, RedisHealthIndicator } from './services/health-indicators';
import { Metrics, MetricsChunkListener, MetricsIngestListener } from './services/metrics.service';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRoot(dataSourceOptions(config)),
        LoggerModule.forRoot(loggerParams(config)),
        TerminusModule,
      ],
      controllers: [
        OperationController,
        OperationRpcController,
        ExecutionController,
        TargetController,
        StatsController,
        ClientController,
        DashboardController,
        HealthController,
        MetricsController,
      ],
      providers: [
        { provide: AppConfig, useValue: config },
        { provide: APP_GUARD, useClass: AuthGuard },
        Database,
        CatalogService,
        ClientService,
        OperationValidator,
        OperationService,
        IngestBuffer,
        ExecutionService,
        StatsService,
        PollerWakeup,
        OutboxWakeup,
        RedisService,
        WakeupChannel,
        RateLimiter,
        { provide: ItemReader, useClass: ChunkReader },
        { provide: ItemProcessor, useClass: ChunkProcessor },
        { provide: ItemWriter, useClass: ChunkWriter },
        { provide: SkipPolicy, useClass: DataErrorSkipPolicy },
        { provide: RetryPolicy, useClass: ChunkRetryPolicy },
        { provide: BackOffPolicy, useClass: ExponentialBackOffPolicy },
        LoggingChunkListener,
        OutboxWakeupListener,
        MetricsChunkListener,
        {
          provide: ChunkListeners,
          inject: [LoggingChunkListener, OutboxWakeupListener, MetricsChunkListener],
          useFactory: (...listeners: ChunkListener[]) => new ChunkListeners(listeners),
        },
        JobRepository,
        ChunkStep,
        Poller,
        OutboxRelay,
        RetentionService,
        Metrics,
        MetricsIngestListener,
        {
          provide: IngestListeners,
          inject: [MetricsIngestListener, WakeupChannel],
          useFactory: (...listeners: IngestListener[]) => new IngestListeners(listeners),
        },
        DatabaseHealthIndicator,
        BrokerHealthIndicator,
        RedisHealthIndicator,
      ],
    };
  }
}
