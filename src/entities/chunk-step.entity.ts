import { Column, Entity, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { ChunkEntity, StepCounters } from './chunk.entity';

/** One statement plan of a chunk: a group of operations of one target, type and column set. */
@Entity({ schema: 'batch', name: 'chunk_steps' })
export class ChunkStepEntity extends StepCounters {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  /** Its chunk's id, as GET /api/executions names it. */
  @Column({ name: 'chunk_id', type: 'bigint' })
  executionId: string;

  @ManyToOne(() => ChunkEntity, (chunk) => chunk.steps)
  @JoinColumn({ name: 'chunk_id' })
  chunk?: ChunkEntity;

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
