import { Column, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { ExecutionEntity, StepCounters } from './execution.entity';

/** One statement plan of an execution: a group of operations of one target, type and column set. */
@Entity({ schema: 'batch', name: 'execution_steps' })
export class ExecutionStepEntity extends StepCounters {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column({ name: 'execution_id', type: 'bigint' })
  executionId: string;

  @ManyToOne(() => ExecutionEntity, (execution) => execution.steps)
  @JoinColumn({ name: 'execution_id' })
  execution?: ExecutionEntity;

  @Column({ type: 'text' })
  name: string;

  @Column({ type: 'text' })
  target: string;

  @Column({ type: 'text' })
  type: string;

  @Column({ type: 'text' })
  status: string;

  @Column({ name: 'exit_message', type: 'text', nullable: true })
  exitMessage: string | null;

  @Column({ name: 'started_at', type: 'timestamptz' })
  startedAt: Date;

  @Column({ name: 'ended_at', type: 'timestamptz' })
  endedAt: Date;
}
