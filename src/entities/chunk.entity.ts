import { Column, Entity, OneToMany, PrimaryGeneratedColumn } from 'typeorm';
import { ChunkStepEntity } from './chunk-step.entity';

/** Spring Batch's counters, kept for a whole chunk or step execution and for each of its steps. */
export abstract class StepCounters {
  @Column({ name: 'read_count', type: 'integer', default: 0 })
  readCount: number;

  @Column({ name: 'write_count', type: 'integer', default: 0 })
  writeCount: number;

  @Column({ name: 'filter_count', type: 'integer', default: 0 })
  filterCount: number;

  @Column({ name: 'read_skip_count', type: 'integer', default: 0 })
  readSkipCount: number;

  @Column({ name: 'process_skip_count', type: 'integer', default: 0 })
  processSkipCount: number;

  @Column({ name: 'write_skip_count', type: 'integer', default: 0 })
  writeSkipCount: number;

  @Column({ name: 'commit_count', type: 'integer', default: 0 })
  commitCount: number;

  @Column({ name: 'rollback_count', type: 'integer', default: 0 })
  rollbackCount: number;
}

/** One chunk transaction (a batch run): what it read, wrote and skipped, and how it ended. */
@Entity({ schema: 'batch', name: 'chunks' })
export class ChunkEntity extends StepCounters {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  /** COMPLETED or FAILED. */
  @Column({ type: 'text' })
  status: string;

  @Column({ name: 'exit_message', type: 'text', nullable: true })
  exitMessage: string | null;

  @Column({ type: 'text' })
  worker: string;

  @Column({ name: 'started_at', type: 'timestamptz' })
  startedAt: Date;

  @Column({ name: 'ended_at', type: 'timestamptz' })
  endedAt: Date;

  @OneToMany(() => ChunkStepEntity, (step) => step.chunk)
  steps?: ChunkStepEntity[];
}
