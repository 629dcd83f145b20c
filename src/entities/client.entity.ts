import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

/** A calling service, identified by its API key (stored only as a keyed hash). */
@Entity({ schema: 'batch', name: 'clients' })
export class ClientEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string;

  @Column({ type: 'text', unique: true })
  name: string;

  @Column({ name: 'api_key_hash', type: 'text', unique: true })
  apiKeyHash: string;

  /** Granted targets as `schema.table`, or `*` for all. */
  @Column({ type: 'text', array: true })
  targets: string[];

  /** Tables its `copy` jobs may read, as `schema.table`, or `*` for all (in BATCH_SOURCE_SCHEMAS). */
  @Column({ type: 'text', array: true, default: () => "'{}'" })
  sources: string[];

  @Column({ type: 'boolean', default: false })
  admin: boolean;

  @Column({ name: 'rate_limit_per_second', type: 'integer', nullable: true })
  rateLimitPerSecond: number | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt: Date;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt: Date | null;
}
