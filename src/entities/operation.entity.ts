import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { OperationStatus, OperationType, RowValues } from '../interfaces/operation.interfaces';

/** One structured write to one row of a target table, queued until a chunk applies it. */
@Entity({ schema: 'batch', name: 'operations' })
export class OperationEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column({ name: 'client_id', type: 'bigint' })
  clientId: string;

  /** Canonical `schema.table`. */
  @Column({ type: 'text' })
  target: string;

  @Column({ type: 'text' })
  type: OperationType;

  @Column({ name: 'row_values', type: 'jsonb', nullable: true })
  values: RowValues | null;

  @Column({ name: 'row_key', type: 'jsonb', nullable: true })
  key: RowValues | null;

  @Column({ name: 'conflict_key', type: 'text', array: true, nullable: true })
  conflictKey: string[] | null;

  @Column({ name: 'idempotency_key', type: 'text', nullable: true })
  idempotencyKey: string | null;

  /** The RPC request id (and index in a bulk request): redeliveries of one request create nothing new. */
  @Column({ name: 'request_key', type: 'text', nullable: true })
  requestKey: string | null;

  @Column({ type: 'text', nullable: true })
  label: string | null;

  @Column({ type: 'smallint', default: 0 })
  priority: number;

  @Column({ name: 'not_before', type: 'timestamptz', nullable: true })
  notBefore: Date | null;

  @Column({ type: 'text', default: 'PENDING' })
  status: OperationStatus;

  @Column({ type: 'integer', default: 0 })
  attempts: number;

  @Column({ name: 'rows_affected', type: 'integer', nullable: true })
  rowsAffected: number | null;

  @Column({ name: 'error_code', type: 'text', nullable: true })
  errorCode: string | null;

  @Column({ name: 'error_message', type: 'text', nullable: true })
  errorMessage: string | null;

  @Column({ name: 'execution_id', type: 'bigint', nullable: true })
  executionId: string | null;

  @Column({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @Column({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;

  @Column({ name: 'settled_at', type: 'timestamptz', nullable: true })
  settledAt: Date | null;
}
