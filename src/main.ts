import 'reflect-metadata';
import { INestApplication, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MicroserviceOptions } from '@nestjs/microservices';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger as PinoNestLogger } from 'nestjs-pino';
import { existsSync } from 'node:fs';
import type { NextFunction, Request, Response } from 'express';
import { AppModule } from './app.module';
import { AppConfig, ConfigError, loadConfig } from './config/app-config';
import { apiKeyOf } from './controllers/auth';
import { BatchErrorFilter } from './controllers/errors';
import { BytesInFlight } from './controllers/bytes-in-flight';
import { RequestValidationPipe } from './controllers/validation-pipe';
import { RpcServer } from './controllers/rpc-server';
import { JSON_CONTENT_TYPES, readJsonBody, writeExactJson } from './controllers/request-body';
import { ClientService } from './services/access/client.service';
import { migrate } from './services/storage/database';
import { OutboxRelay } from './services/outbox/outbox-relay.service';
import { Poller } from './services/engine/poller.service';
import { JobWorker } from './services/jobs/job-worker.service';
import { ScheduleLoop } from './services/jobs/job-schedules.service';
import { AMQP_SOCKET_OPTIONS } from './config/amqp-connection';
import { httpLogger } from './config/logging';
import { httpRequestMetrics } from './controllers/http-request-metrics';
import { BrokerHealthIndicator } from './services/observability/health-indicators';
import { Metrics } from './services/observability/metrics.service';
import { brokerAnswered, developmentDatabase, missingBroker } from './development-services';
import type { EmbeddedPostgres } from './services/storage/embedded-postgres';

const SHUTDOWN_TIMEOUT_MS = 30_000;
/** The import route, as Express routes it: any case, a trailing slash or none. */
const IMPORTS_PATH = /^\/api\/imports\/?$/i;
const logger = new Logger('Bootstrap');
/** The PostgreSQL a development start runs itself (development-services.ts), stopped last. */
let embeddedDatabase: EmbeddedPostgres | null = null;

/**
 * Stops taking RPC requests (unacknowledged ones go back to the queue), lets the chunk in flight commit or roll
 * back, hands running job executions back to other workers, publishes the notifications written, closes connections;
 * exits 0, or 1 when that takes too long.
 */
async function shutdown(app: INestApplication, signal: string): Promise<void> {
  logger.log(`${signal}: shutting down`);
  setTimeout(() => {
    logger.error(`shutdown took longer than ${SHUTDOWN_TIMEOUT_MS} ms; exiting`);
    process.exit(1);
  }, SHUTDOWN_TIMEOUT_MS).unref();
  await Promise.all(app.getMicroservices().map((microservice) => microservice.close()));
  if (app.get(AppConfig).role !== 'api') {
    await app.get(ScheduleLoop).stop();
    // the chunks in flight first (jobs hand theirs back to other workers at a chunk boundary),
    await Promise.all([app.get(Poller).stop(), app.get(JobWorker).stop()]);
    await app.get(OutboxRelay).stop(); // then the notifications they wrote
  }
  await app.close();
  await embeddedDatabase?.stop();
  process.exit(0);
}

function readConfig(): AppConfig {
  if (existsSync('.env')) process.loadEnvFile('.env');
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

/**
 * Starts the service in its order: configuration, migrations, the application, HTTP and the RPC consumer by role,
 * the shutdown sequence. One function over 60 lines on purpose: the order is the point, and it reads top to bottom.
 */
async function bootstrap(): Promise<void> {
  // A reply published while the broker goes away rejects inside @nestjs/microservices, where nobody awaits it;
  // the request is redelivered and answered again, so such a rejection is logged, not fatal.
  process.on('unhandledRejection', (reason) =>
    logger.error(`unhandled rejection: ${reason instanceof Error ? reason.message : String(reason)}`),
  );
  const config = readConfig();
  const database = await developmentDatabase(config);
  embeddedDatabase = database.server;
  if (database.notice) logger.log(database.notice);
  const brokerMissing = await missingBroker(config);
  if (brokerMissing) logger.warn(brokerMissing);
  await migrate(config);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bodyParser: false,
    bufferLogs: true,
  });
  app.useLogger(app.get(PinoNestLogger)); // structured logs (src/config/logging.ts), LOG_LEVEL applied there
  app.use(httpLogger(config));
  app.use(httpRequestMetrics(app.get(Metrics)));
  const bytesInFlight = new BytesInFlight(config.limits.maxBytesInFlight);
  const clients = app.get(ClientService);
  const admitted = bytesInFlight.forHttp(config.limits.maxMessageBytes, (request) =>
    clients.authenticate(apiKeyOf(request)),
  );
  // an import's body is streamed into storage in blocks, never held whole: it takes nothing of the budget
  app.use((request: Request, response: Response, next: NextFunction) =>
    IMPORTS_PATH.test(request.path) ? next() : admitted(request, response, next),
  );
  app.useBodyParser('raw', { type: JSON_CONTENT_TYPES, limit: config.limits.maxMessageBytes });
  app.use(readJsonBody);
  app.use(writeExactJson);
  app.useGlobalPipes(new RequestValidationPipe());
  app.useGlobalFilters(new BatchErrorFilter());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void shutdown(app, signal));

  const swagger = new DocumentBuilder()
    .setTitle('Batch Service')
    .setDescription(
      'Aggregates many small database writes into few large, transactional ones. See the README for the RPC contract.',
    )
    .setVersion('1')
    .addApiKey({ type: 'apiKey', name: 'x-api-key', in: 'header', description: "the client's API key" }, 'api-key')
    .addBearerAuth({
      type: 'http',
      scheme: 'bearer',
      description: "the client's API key as a bearer token, instead of x-api-key",
    })
    .build();
  SwaggerModule.setup('api/docs', app, () => SwaggerModule.createDocument(app, swagger), {
    jsonDocumentUrl: 'api/docs-json',
  });

  if (brokerMissing) app.get(BrokerHealthIndicator).optional(brokerMissing);
  if (config.role !== 'worker') {
    const server = new RpcServer(
      {
        urls: [config.rmq.url],
        queue: config.rmq.queue,
        queueOptions: { durable: true },
        noAck: false,
        prefetchCount: config.rmq.prefetch,
        socketOptions: AMQP_SOCKET_OPTIONS,
      },
      app.get(Metrics),
      { maxMessageBytes: config.limits.maxMessageBytes, eventsExchange: config.rmq.eventsExchange, bytesInFlight },
    );
    const rpc = app.connectMicroservice<MicroserviceOptions>({ strategy: server }, { inheritAppConfig: true });
    app.get(BrokerHealthIndicator).watchRpcConsumer(rpc.status);
    const startRpc = () => app.startAllMicroservices().then(() => warmUp(server, config.rmq.warmUpRequests));
    // without a broker (development), HTTP serves at once, and RPC starts once one answers
    if (brokerMissing)
      void brokerAnswered(config)
        .then(startRpc)
        .then(
          () => logger.log(`a broker answered: RPC serves the queue "${config.rmq.queue}"`),
          (error: Error) => logger.error(`RPC did not start: ${error.message}`),
        );
    else await startRpc();
  }
  await app.listen(config.port);
  logger.log(`Batch Service (${config.role}) listening on port ${config.port}, RPC queue "${config.rmq.queue}"`);
}

/** Answers `requests` refused requests before the process says it is ready, so that callers meet compiled code. */
async function warmUp(server: RpcServer, requests: number): Promise<void> {
  if (requests === 0) return;
  const started = performance.now();
  const answered = await server.warmUp(requests);
  logger.log(
    `warmed up: ${answered} of ${requests} requests answered in ${Math.round(performance.now() - started)} ms`,
  );
}

bootstrap().catch(async (error) => {
  console.error('Batch Service failed to start:', error);
  await embeddedDatabase?.stop();
  process.exit(1);
});
