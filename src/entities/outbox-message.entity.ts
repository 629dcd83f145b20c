import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { IOperationsSettledEvent } from '../interfaces/operation.interfaces';

/** A notification written in the chunk transaction, published after commit by the outbox relay. */
@Entity({ schema: 'batch', name: 'outbox' })
export class OutboxMessageEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column({ name: 'routing_key', type: 'text' })
  routingKey: string;

  @Column({ type: 'json' })
  payload: IOperationsSettledEvent;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'sent_at', type: 'timestamptz', nullable: true })
  sentAt: Date | null;
}
