import { Injectable, Logger } from '@nestjs/common';
import { Gauge } from 'prom-client';
import type { StepRun } from '../jobs';
import type { IJobProgress } from '../../interfaces/job.interfaces';
import { AfterChunk, OnLeaseLost } from '../jobs';
import { JobViews } from '../jobs/repository/job-views';
import { Metrics, QUEUE_STATS_TTL_MS, sharedFor } from './metrics.service';

/** Running executions whose progress a scrape shows at most (the newest). */
const RUNNING_SHOWN = 100;

/**
 * The jobs' metrics: rows written, counted as chunks commit (a job listener like any other); executions by job and
 * status, and the running ones' progress, read from the database when scraped (at most once per QUEUE_STATS_TTL_MS).
 */
@Injectable()
export class MetricsJobListener {
  private readonly logger = new Logger('Metrics');

  constructor(
    private readonly metrics: Metrics,
    jobs: JobViews,
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

    // The running executions' progress (an import's bytes, a copy's rows), as their JobExecution gives it.
    const running = sharedFor(QUEUE_STATS_TTL_MS, () => jobs.executions({ status: 'STARTED', limit: RUNNING_SHOWN }));
    const progressGauge = (name: string, help: string, read: (progress: IJobProgress) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['job', 'execution', 'unit'],
        registers: [metrics.registry],
        async collect(this: Gauge<string>): Promise<void> {
          this.reset();
          try {
            for (const { job, id, progress } of await running()) {
              const value = progress && read(progress);
              if (value !== null && value !== undefined) this.set({ job, execution: id, unit: progress!.unit }, value);
            }
          } catch (error) {
            logger.debug(`job progress unavailable: ${(error as Error).message}`);
          }
        },
      });
    progressGauge('batch_job_progress_done', 'Running job executions: units done (bytes of an import)', (p) => p.done);
    progressGauge('batch_job_progress_total', 'Running job executions: units in all, where known', (p) => p.total);
    progressGauge('batch_job_progress_per_second', 'Running job executions: units done per second', (p) => p.perSecond);
    progressGauge(
      'batch_job_progress_eta_seconds',
      'Running job executions: seconds left, where known',
      (p) => p.etaSeconds,
    );
  }

  @AfterChunk()
  countRows(step: StepRun): void {
    this.metrics.jobRows.inc({ job: step.job.job }, step.counts.writeCount);
  }

  @OnLeaseLost()
  countLeaseLost(job: string): void {
    this.metrics.jobLeaseLosses.inc({ job });
  }
}
