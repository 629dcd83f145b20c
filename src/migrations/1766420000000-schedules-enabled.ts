import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A schedule can be kept but disabled (no tick of it is launched), and remembers its newest tick launched, so that an
 * operator sees when it last ran. Due ticks are found through the enabled schedules only.
 */
export class SchedulesEnabled1766420000000 implements MigrationInterface {
  name = 'SchedulesEnabled1766420000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE batch.job_schedules ADD COLUMN enabled boolean NOT NULL DEFAULT true,
                                      ADD COLUMN last_tick_at timestamptz;
      DROP INDEX batch.job_schedules_next_tick;
      CREATE INDEX job_schedules_next_tick ON batch.job_schedules (next_tick_at) WHERE enabled;
      COMMENT ON TABLE batch.job_schedules IS ${literal(DESCRIPTION)}`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`
      DROP INDEX batch.job_schedules_next_tick;
      CREATE INDEX job_schedules_next_tick ON batch.job_schedules (next_tick_at);
      ALTER TABLE batch.job_schedules DROP COLUMN enabled, DROP COLUMN last_tick_at;
      COMMENT ON TABLE batch.job_schedules IS ${literal(PREVIOUS_DESCRIPTION)}`);
  }
}

const DESCRIPTION =
  'Schedules that launch a job as their client at each tick of a cron expression, with the next tick, the newest tick launched and whether they are enabled. Written by the admin API (/api/jobs/schedules); the worker that launches due ticks locks a row, launches its ticks and moves its next tick on.';
const PREVIOUS_DESCRIPTION =
  'Schedules that launch a job as their client at each tick of a cron expression, with the next tick. Written by the admin API (/api/jobs/schedules); the worker that launches due ticks locks a row and moves its next tick on.';

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
