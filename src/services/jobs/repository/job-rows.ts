import type { JobStatus } from '../../../interfaces/job.interfaces';
import type { JobConflictReason, JobParameters } from '../../../interfaces/job.interfaces';

/**
 * The job repository (Spring Batch's) in the schema `batch`: instances, executions held by leases, step executions
 * with their counters and position, rejects. Its statements are grouped by who uses them: launches (the operator),
 * leases (the workers), step executions (the runner), views (the API and the metrics). Every statement that moves a
 * running execution or step on is guarded by the lease (`lease_owner`), so that a worker that lost its lease changes
 * nothing. A statement that belongs to a caller's transaction takes it (`tx`); every other runs on the pool.
 */

/** An execution as a worker runs it. */
export interface ExecutionRow {
  id: string;
  instance_id: string;
  job: string;
  client_id: string;
  parameters: JobParameters;
  options: JobParameters;
  status: JobStatus;
  started_at: Date | null;
  /** Whether this claim started it (it was STARTING), rather than took it over. */
  first_start: boolean;
}

/** A step execution, or a partition of one, as a worker runs it. */
export interface StepRow {
  id: string;
  job_execution_id: string;
  name: string;
  partition: string | null;
  status: JobStatus;
  exit_code: string | null;
  exit_description: string | null;
  execution_context: Record<string, unknown>;
  skips: number;
  /** Chunks in a row that lost their connection (the back-off of its pauses). */
  outages: number;
}

/** How a step or an execution ended. */
export interface Ending {
  status: JobStatus;
  code: string;
  description: string | null;
}

export type LaunchOutcome = 'LAUNCHED' | JobConflictReason;

const RUNNING: JobStatus[] = ['STARTING', 'STARTED', 'STOPPING'];

export function isRunning(status: JobStatus): boolean {
  return RUNNING.includes(status);
}

/** How the description of an execution whose worker was lost begins. */
export const LOST = 'its worker';

/** The worker no longer holds the execution or step it was running: another took it over, or it was ended. */
export class LeaseLost extends Error {
  constructor() {
    super('the lease was lost');
  }
}
