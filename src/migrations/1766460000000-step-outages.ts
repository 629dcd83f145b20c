import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A step's connection losses in a row, kept with the step rather than by the worker that saw them: a step paused for
 * its back-off may be continued by any worker, and the back-off goes on doubling from where it was.
 */
export class StepOutages1766460000000 implements MigrationInterface {
  name = 'StepOutages1766460000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      ALTER TABLE batch.step_executions ADD COLUMN outages integer NOT NULL DEFAULT 0;
      COMMENT ON COLUMN batch.step_executions.outages IS ${literal(DESCRIPTION)}`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.step_executions DROP COLUMN outages`);
  }
}

const DESCRIPTION =
  'Chunks in a row that lost their connection to a database, counted as the step is paused for its back-off (which doubles with each) and reset by the next chunk that commits.';

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
