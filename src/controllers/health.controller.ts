import { Controller, Get, Res, ServiceUnavailableException } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckResult, HealthCheckService, HealthIndicatorFunction } from '@nestjs/terminus';
import type { Response } from 'express';
import {
  BrokerHealthIndicator,
  DatabaseHealthIndicator,
  NamedDatabasesHealthIndicator,
  RedisHealthIndicator,
  withOptionalIndicator,
} from '../services/observability/health-indicators';
import { Public } from './auth';

/** Readiness and liveness probes, in terminus' format; no API key needed. */
@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: DatabaseHealthIndicator,
    private readonly broker: BrokerHealthIndicator,
    private readonly redis: RedisHealthIndicator,
    private readonly databases: NamedDatabasesHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  @ApiOperation({
    summary: 'Readiness: the database answers and the broker connections are up (503 otherwise)',
    description:
      'Redis is reported too, but it is optional: Redis down never makes the service unready. So is the broker of a ' +
      'development process started without one: it serves REST, and the broker is listed as down with how to get one. ' +
      'So are the databases of BATCH_DATABASES, under `databases`, each `up` or `down`, and any database no longer ' +
      'configured whose operations wait for it.',
  })
  async readiness(@Res({ passthrough: true }) response: Response): Promise<HealthCheckResult> {
    const brokerOptional = this.broker.isOptional;
    const required: HealthIndicatorFunction[] = [() => this.database.check('database')];
    if (!brokerOptional) required.push(() => this.broker.check('broker'));
    const [result, redis, databases] = await Promise.all([
      this.health.check(required).catch((error: unknown) => {
        if (!(error instanceof ServiceUnavailableException)) throw error;
        response.status(503);
        return error.getResponse() as HealthCheckResult;
      }),
      this.redis.check('redis'),
      this.databases.check('databases'),
    ]);
    const withBroker = brokerOptional ? withOptionalIndicator(result, this.broker.check('broker')) : result;
    const withRedis = withOptionalIndicator(withBroker, redis);
    return databases ? withOptionalIndicator(withRedis, databases) : withRedis;
  }

  @Get('live')
  @HealthCheck()
  @ApiOperation({ summary: 'Liveness: the process answers (no dependency is checked)' })
  liveness(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }
}
