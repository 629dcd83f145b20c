import { MigrationInterface, QueryRunner } from 'typeorm';

/** Indexes that let retention find old settled operations, sent outbox rows and old executions cheaply. */
export class RetentionIndexes1763800000000 implements MigrationInterface {
  name = 'RetentionIndexes1763800000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`CREATE INDEX operations_settled ON batch.operations (settled_at) WHERE status <> 'PENDING'`);
    await db.query(`CREATE INDEX outbox_sent ON batch.outbox (sent_at) WHERE sent_at IS NOT NULL`);
    await db.query(`CREATE INDEX executions_ended ON batch.executions (ended_at)`);
    // The queue table churns: vacuum it often so that the claim's partial index stays small.
    await db.query(
      `ALTER TABLE batch.operations SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)`,
    );
    await db.query(`ALTER TABLE batch.outbox SET (autovacuum_vacuum_scale_factor = 0.01)`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.outbox RESET (autovacuum_vacuum_scale_factor)`);
    await db.query(
      `ALTER TABLE batch.operations RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor)`,
    );
    await db.query(`DROP INDEX batch.executions_ended`);
    await db.query(`DROP INDEX batch.outbox_sent`);
    await db.query(`DROP INDEX batch.operations_settled`);
  }
}
