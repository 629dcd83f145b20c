import { Injectable, Logger } from '@nestjs/common';
import { Gauge } from 'prom-client';
import type { StepRun } from '../jobs/job-definition';
import { AfterChunk } from '../jobs/job-registry.service';
import { JobRepository } from '../jobs/job-repository';
import { Metrics, QUEUE_STATS_TTL_MS, sharedFor } from './metrics.service';

/**
 * The jobs' metrics: rows written, counted as chunks commit (a job listener like any other), and executions by job
 * and status, read from the database when scraped (at most once per QUEUE_STATS_TTL_MS).
 */
@Injectable()
export class MetricsJobListener {
  private readonly logger = new Logger('Metrics');

  constructor(
    private readonly metrics: Metrics,
    jobs: JobRepository,
  ) {
    const executions = sharedFor(QUEUE_STATS_TTL_MS, () => jobs.countsByStatus());
    const logger = this.logger;
    new Gauge({
      name: 'batch_job_executions',
      help: 'Job executions by job and status (all clients)',
      labelNames: ['job', 'status'],
      registers: [metrics.registry],
      async collect(this: Gauge<string>): Promise<void> {
        this.reset();
        try {
          for (const { job, status, count } of await executions()) this.set({ job, status }, count);
        } catch (error) {
          logger.debug(`job metrics unavailable: ${(error as Error).message}`);
        }
      },
    });
  }

  @AfterChunk()
  countRows(step: StepRun): void {
    this.metrics.jobRows.inc({ job: step.job.job }, step.counts.writeCount);
  }
}
