import 'reflect-metadata';
import { BullModule, Processor, WorkerHost } from '@nestjs/bullmq';
import { Module, OnModuleDestroy } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Job } from 'bullmq';
import { Pool } from 'pg';
import { dbClientConfig } from '../test/support/shared-services';

/**
 * The alternative users would pick: a BullMQ queue with a NestJS worker (the stack of the team's other workers)
 * applying one job per row, 50 at a time, over a pool of 10 connections. Started by bullmq.ts with the queue paused.
 */
export const QUEUE = 'bench-rows';
export const CONCURRENCY = 50;

/** The row a job carries, as the bench's target table takes it. */
export interface RowJob {
  id: number;
  qty: number;
  price: number;
  note: string;
  at: string;
}

const pool = new Pool({ ...dbClientConfig(process.env.DB_NAME!), max: 10 });

@Processor(QUEUE, { concurrency: CONCURRENCY })
class RowWriter extends WorkerHost implements OnModuleDestroy {
  async process(job: Job<RowJob>): Promise<void> {
    const { id, qty, price, note, at } = job.data;
    await pool.query({
      name: 'insert-row',
      text: `INSERT INTO public.bench_bullmq (id, qty, price, note, at) VALUES ($1, $2, $3, $4, $5)`,
      values: [id, qty, price, note, at],
    });
  }

  async onModuleDestroy(): Promise<void> {
    await pool.end();
  }
}

@Module({
  imports: [
    BullModule.forRoot({ connection: { url: process.env.REDIS_URL }, prefix: process.env.BULLMQ_PREFIX }),
    BullModule.registerQueue({ name: QUEUE }),
  ],
  providers: [RowWriter],
})
class WorkerModule {}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error'] });
  process.send?.('ready');
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

if (require.main === module) void main();
