import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HealthIndicatorService } from '@nestjs/terminus';
import { BehaviorSubject } from 'rxjs';
import type { AppConfig } from '../../src/config/app-config';
import type { Database } from '../../src/services/storage/database';
import {
  BrokerHealthIndicator,
  DatabaseHealthIndicator,
  RedisHealthIndicator,
  withOptionalIndicator,
  withTimeout,
} from '../../src/services/observability/health-indicators';
import type { OutboxRelay } from '../../src/services/outbox/outbox-relay.service';
import type { RedisService } from '../../src/services/storage/redis.service';

describe('withOptionalIndicator', () => {
  const ready = {
    status: 'ok' as const,
    info: { database: { status: 'up' as const } },
    error: {},
    details: { database: { status: 'up' as const } },
  };

  it('lists an optional indicator that is down under error and details without failing the check', () => {
    const result = withOptionalIndicator(ready, { redis: { status: 'down', message: 'connect ECONNREFUSED' } });
    assert.deepEqual(result, {
      status: 'ok',
      info: { database: { status: 'up' } },
      error: { redis: { status: 'down', message: 'connect ECONNREFUSED', optional: true } },
      details: {
        database: { status: 'up' },
        redis: { status: 'down', message: 'connect ECONNREFUSED', optional: true },
      },
    });
  });

  it('lists one that is up under info and details, and leaves a failed check failed', () => {
    const unready = {
      status: 'error' as const,
      info: {},
      error: { broker: { status: 'down' as const } },
      details: { broker: { status: 'down' as const } },
    };
    const result = withOptionalIndicator(unready, { redis: { status: 'up' } });
    assert.equal(result.status, 'error');
    assert.deepEqual(result.info, { redis: { status: 'up', optional: true } });
    assert.deepEqual(result.error, { broker: { status: 'down' } });
    assert.deepEqual(Object.keys(result.details), ['broker', 'redis']);
  });
});

describe('withTimeout', () => {
  it('resolves with the work, or rejects once the time is up', async () => {
    assert.equal(await withTimeout(Promise.resolve(1), 50), 1);
    await assert.rejects(withTimeout(new Promise(() => undefined), 20), /timeout of 20 ms exceeded/);
    await assert.rejects(withTimeout(Promise.reject(new Error('refused')), 50), /refused/);
  });
});

describe('BrokerHealthIndicator', () => {
  const indicator = (role: AppConfig['role'], relayConnected: boolean) =>
    new BrokerHealthIndicator(
      new HealthIndicatorService(),
      { role } as AppConfig,
      role === 'api' ? undefined : ({ brokerConnected: relayConnected } as OutboxRelay), // registered in worker processes only
    );

  it('is up when the RPC consumer and the outbox relay are connected (role all)', () => {
    const broker = indicator('all', true);
    assert.deepEqual(broker.check('broker'), {
      broker: { status: 'down', rpcConsumer: 'not connected yet', outboxRelay: 'connected' },
    });
    const status = new BehaviorSubject('connected');
    broker.watchRpcConsumer(status);
    assert.deepEqual(broker.check('broker'), {
      broker: { status: 'up', rpcConsumer: 'connected', outboxRelay: 'connected' },
    });
    status.next('disconnected');
    assert.equal(broker.check('broker').broker.status, 'down');
    status.next('connected');
    status.next('blocked');
    assert.equal(broker.check('broker').broker.status, 'down');
    status.next('unblocked');
    assert.equal(broker.check('broker').broker.status, 'up');
  });

  it('says what is missing while down, once the process started without a broker (development)', () => {
    const broker = indicator('all', false);
    assert.equal(broker.isOptional, false);
    broker.optional('No RabbitMQ answers at amqp://127.0.0.1:5672: … (docker compose up -d rabbitmq starts one)');
    assert.equal(broker.isOptional, true);
    assert.deepEqual(broker.check('broker'), {
      broker: {
        status: 'down',
        rpcConsumer: 'not connected yet',
        outboxRelay: 'disconnected',
        message: 'No RabbitMQ answers at amqp://127.0.0.1:5672: … (docker compose up -d rabbitmq starts one)',
      },
    });
    broker.watchRpcConsumer(new BehaviorSubject('connected'));
    assert.equal(indicator('worker', true).check('broker').broker.status, 'up');
  });

  it('checks only the connections of its role', () => {
    assert.deepEqual(indicator('worker', true).check('broker'), { broker: { status: 'up', outboxRelay: 'connected' } });
    assert.deepEqual(indicator('worker', false).check('broker'), {
      broker: { status: 'down', outboxRelay: 'disconnected' },
    });
    const api = indicator('api', false);
    api.watchRpcConsumer(new BehaviorSubject('connected'));
    assert.deepEqual(api.check('broker'), { broker: { status: 'up', rpcConsumer: 'connected' } });
  });
});

describe('DatabaseHealthIndicator', () => {
  const indicator = (query: () => Promise<unknown>) =>
    new DatabaseHealthIndicator(new HealthIndicatorService(), { query } as unknown as Database);

  it('is up when SELECT 1 answers, down with the reason when it fails or takes over 2 s', async () => {
    const asked: string[] = [];
    assert.deepEqual(
      await new DatabaseHealthIndicator(new HealthIndicatorService(), {
        query: async (sql: string) => (asked.push(sql), [{}]),
      } as unknown as Database).check('database'),
      {
        database: { status: 'up' },
      },
    );
    assert.deepEqual(asked, ['SELECT 1']);
    assert.deepEqual(
      await indicator(() => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'))).check('database'),
      {
        database: { status: 'down', message: 'connect ECONNREFUSED 127.0.0.1:5432' },
      },
    );
    const started = Date.now();
    assert.deepEqual(await indicator(() => new Promise(() => undefined)).check('database'), {
      database: { status: 'down', message: 'timeout of 2000 ms exceeded' },
    });
    assert.ok(Date.now() - started >= 1990);
  });
});

describe('RedisHealthIndicator', () => {
  const indicator = (ping: () => Promise<unknown>) => {
    const redis = new RedisHealthIndicator(new HealthIndicatorService(), {
      connect: () => ({ ping }),
    } as unknown as RedisService);
    redis.onApplicationBootstrap();
    return redis;
  };

  it('is up when PING answers, down with the reason when it fails', async () => {
    assert.deepEqual(await indicator(async () => 'PONG').check('redis'), { redis: { status: 'up' } });
    assert.deepEqual(await indicator(() => Promise.reject(new Error("Stream isn't writeable"))).check('redis'), {
      redis: { status: 'down', message: "Stream isn't writeable" },
    });
  });
});
