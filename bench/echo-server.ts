import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, MicroserviceOptions, Payload, Transport } from '@nestjs/microservices';
import { AMQP_SOCKET_OPTIONS } from '../src/config/amqp-connection';

/** The ingest baseline: a bare NestJS RMQ handler that answers each request with its payload (its queue goes with it). */
@Controller()
class EchoController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }
}

@Module({ controllers: [EchoController] })
class EchoModule {}

async function main(): Promise<void> {
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(EchoModule, {
    transport: Transport.RMQ,
    options: {
      urls: [process.env.BATCH_SERVICE_RMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'],
      queue: process.env.ECHO_QUEUE,
      queueOptions: { durable: true, autoDelete: true },
      socketOptions: AMQP_SOCKET_OPTIONS,
    },
    logger: ['error'],
  });
  await app.listen();
  process.send?.('ready');
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

void main();
