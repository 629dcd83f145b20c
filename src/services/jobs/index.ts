/**
 * The job framework as a job's author uses it (docs/jobs.md, "Writing a job"): the builder and its step kinds, the
 * decorators that register a job and its listeners, what a step sees of its execution, the helpers of the jobs that
 * write a target, and the toolkit (toolkit/): the chunk step with retry and concurrency, ready readers, writers and
 * processors, and what they are given (the database, its catalog). The built-in `copy` and `import` are written
 * against this alone, as a team's own jobs are; a reader of an uploaded data set stands on the imports and is theirs
 * (imports/dataset-reader.ts).
 */
export { job, JobBuilder, partitioned, RUN_ID, tasklet, underSavepoint } from './job-definition';
export { skip, SkipLimitExceeded, skipLimitDescription, type SkipKind, type SkipPlace } from './job-skips';
export type {
  ChunkOrientedStep,
  ItemListeners,
  ItemProcessor,
  ItemReader,
  ItemWriter,
  WriteRefusal,
  JobDefinition,
  JobRun,
  ParameterSpec,
  Partition,
  PartitionedStep,
  RepeatStatus,
  StepDefinition,
  StepRun,
  Tasklet,
  TaskletStep,
} from './job-definition';
export { keyText, namesOf, withDefaults } from './job-parameters';
export {
  AfterChunk,
  AfterChunkError,
  AfterJob,
  AfterProcess,
  AfterRead,
  AfterStep,
  AfterWrite,
  BatchJob,
  BeforeChunk,
  BeforeJob,
  BeforeProcess,
  BeforeStep,
  BeforeWrite,
  OnLeaseLost,
  OnProcessError,
  OnReadError,
  OnSkip,
  OnWriteError,
  type JobProvider,
} from './job-registry.service';
export type { Ending } from './repository/job-rows';
export { CONFLICT_KEY, conflictKeyOf, MODE } from './write-mode';
export { JobOperator, type Launcher } from './job-operator.service';
export { JobSignals } from './job-signals';
export { cursorReader, pagingReader, type CursorReaderOptions, type PagingReaderOptions } from './toolkit/readers';
export {
  copyWriter,
  tableWriter,
  valueText,
  type CopyWriterOptions,
  type TableWriterOptions,
  type WriteType,
} from './toolkit/writers';
export { chunk } from './toolkit/chunk-step';
// what a job's readers and writers are given: a job injects them in its constructor
export { CatalogService } from '../storage/catalog.service';
export { Database } from '../storage/database';
export { compose, ItemInvalid, validate } from './toolkit/processors';
export { threadProcessor, ThreadProcessorError, type ThreadProcessorOptions } from './toolkit/thread-processor';
export { backoffMs, ChunkRetry, type Backoff, type RetryPolicy } from './toolkit/retry';
