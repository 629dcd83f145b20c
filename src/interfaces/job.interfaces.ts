/** The public API of jobs (docs/api.md#jobs): what callers send and receive. */

export const JOB_STATUSES = ['STARTING', 'STARTED', 'STOPPING', 'STOPPED', 'COMPLETED', 'FAILED', 'ABANDONED'] as const;
/** Spring Batch's BatchStatus. */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses an execution ends in: nothing runs after them. */
export const FINAL_JOB_STATUSES: readonly JobStatus[] = ['COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED'];

/** A flat JSON object: parameters and options are made of these. */
export type JobParameterValue = string | number | boolean | null | string[] | Record<string, string>;
export type JobParameters = Record<string, JobParameterValue>;

export interface IExitStatus {
  /** COMPLETED, COMPLETED_WITH_SKIPS, FAILED, STOPPED, or a step's own code. */
  code: string;
  description: string | null;
}

export interface IJobProgress {
  unit: string;
  done: number;
  total: number | null;
  /** 0 until a chunk of this execution committed. */
  perSecond: number;
  etaSeconds: number | null;
}

/** Counters of a step (Spring Batch's names): a job's step, or a step of one of the queue's chunks. */
export interface StepCounts {
  readCount: number;
  writeCount: number;
  filterCount: number;
  readSkipCount: number;
  processSkipCount: number;
  writeSkipCount: number;
  commitCount: number;
  rollbackCount: number;
}

export interface IStepExecution extends StepCounts {
  name: string;
  status: JobStatus;
  /** A chunk step's retries (of an item's processing or of a chunk's write) in the chunks committed. */
  retryCount: number;
  exitStatus: IExitStatus | null;
  startedAt: string | null;
  endedAt: string | null;
}

export interface IJobExecution {
  id: string;
  job: string;
  instanceId: string;
  parameters: JobParameters;
  options: JobParameters;
  client: string;
  status: JobStatus;
  exitStatus: IExitStatus | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  startCount: number;
  /** A restart would start a new execution: FAILED or STOPPED, its instance's newest, with starts left. */
  restartable: boolean;
  /** Before a step reported any: nothing done yet, in `items`. */
  progress: IJobProgress;
  steps: IStepExecution[];
}

export interface IJobExecutionList {
  items: IJobExecution[];
  nextCursor: string | null;
}

export interface ILaunchJobRequest {
  job: string;
  parameters?: JobParameters;
  options?: JobParameters;
}

export interface IJobExecutionIdRequest {
  id: string;
}

export interface IListJobExecutionsRequest {
  job?: string;
  status?: JobStatus;
  /** One job instance's executions: the first and each restart, automatic ones included. */
  instanceId?: string;
  limit?: number;
  cursor?: string;
}

export type JobParameterType = 'string' | 'integer' | 'number' | 'boolean' | 'key' | 'names' | 'mapping' | 'timestamp';

export interface IJobParameterDescription {
  name: string;
  type: JobParameterType;
  required: boolean;
  default: JobParameterValue | undefined;
  description: string;
}

export interface IJobDefinition {
  name: string;
  description: string;
  steps: string[];
  parameters: IJobParameterDescription[];
  options: IJobParameterDescription[];
  startLimit: number;
  restartable: boolean;
}

export interface IJobDefinitionList {
  jobs: IJobDefinition[];
}

export interface IJobReject {
  line: number | null;
  byteOffset: number | null;
  column: string | null;
  code: string;
  message: string;
  record: string | null;
}

export interface IJobRejectList {
  items: IJobReject[];
  nextCursor: string | null;
}

export interface IJobSchedule {
  name: string;
  job: string;
  cron: string;
  timeZone: string;
  parameters: JobParameters;
  options: JobParameters;
  client: string;
  backfillSeconds: number;
  /** A disabled schedule is kept, and launches nothing. */
  enabled: boolean;
  /** The next tick to be launched; null while disabled. */
  nextTickAt: string | null;
  /** The newest tick launched (a launch refused is logged), null before the first. */
  lastTickAt: string | null;
}

/** How an execution ends that a job alert is called for: its status FAILED, or COMPLETED with skips. */
export const JOB_ALERT_EXITS = ['FAILED', 'COMPLETED_WITH_SKIPS'] as const;
export type JobAlertExit = (typeof JOB_ALERT_EXITS)[number];

/** A job alert (docs/api.md#job-alerts): a webhook an admin points a job, a client's jobs, or both at. */
export interface IJobAlert {
  name: string;
  url: string;
  /** The job it is for; null for every job. */
  job: string | null;
  /** The client whose executions it is for; null for every client's. */
  client: string | null;
  on: JobAlertExit[];
  createdAt: string;
  updatedAt: string;
  /** Its newest delivery, null before the first. */
  lastDelivery: IJobAlertDelivery | null;
}

export interface IJobAlertDelivery {
  executionId: string;
  /** PENDING until the webhook answered 2xx (DELIVERED) or the last attempt failed (FAILED). */
  status: 'PENDING' | 'DELIVERED' | 'FAILED';
  attempts: number;
  lastError: string | null;
  createdAt: string;
  deliveredAt: string | null;
  /** When it is called next, while PENDING. */
  nextAttemptAt: string | null;
}

/** The `job.finished` notification (docs/api.md#jobfinished). */
export interface IJobFinishedEvent {
  type: 'job.finished';
  client: string;
  executionId: string;
  job: string;
  instanceId: string;
  parameters: JobParameters;
  status: JobStatus;
  exitStatus: IExitStatus;
  readCount: number;
  writeCount: number;
  skipCount: number;
  startedAt: string | null;
  endedAt: string;
}

/** The RPC patterns of jobs, on the queue BATCH_SERVICE_RMQ_QUEUE. */
export const JOB_PATTERNS = {
  listJobs: 'listJobs',
  launchJob: 'launchJob',
  listJobExecutions: 'listJobExecutions',
  getJobExecution: 'getJobExecution',
  stopJobExecution: 'stopJobExecution',
  restartJobExecution: 'restartJobExecution',
  abandonJobExecution: 'abandonJobExecution',
  getJobRejects: 'getJobRejects',
} as const;

export const JOB_FINISHED_ROUTING_KEY_PREFIX = 'jobs.finished.';

/** Why a launch was refused with CONFLICT: `details.reason`. */
export type JobConflictReason =
  'JOB_EXECUTION_RUNNING' | 'JOB_INSTANCE_COMPLETE' | 'START_LIMIT_EXCEEDED' | 'JOB_NOT_RESTARTABLE';

/**
 * What a launch needs its client to be granted: tables to read and tables to write (`schema.table` as the catalog
 * names them, else as given), and how the launch spelled each, for a refusal to say: spelled as the catalog does, it
 * would tell a client which tables exist.
 */
export interface JobGrants {
  reads: string[];
  writes: string[];
  given?: Record<string, string>;
}
