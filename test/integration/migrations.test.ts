import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { DataSource } from 'typeorm';
import { dataSourceOptions, MIGRATIONS, prepareMigrations } from '../../src/services/database';
import { dropDatabase, testConfig } from '../support/test-database';

describe('migrations (real PostgreSQL)', () => {
  const config = testConfig();
  after(() => dropDatabase(config.db.name));

  it('moves TypeORM\'s table of applied migrations out of the targets\' schema, and runs none twice', async () => {
    // The layout before: TypeORM's table in the search path's first schema, public, among the targets.
    let release = await prepareMigrations(config.db);
    const before = await new DataSource(dataSourceOptions(config)).initialize().finally(release);
    await before.query(`ALTER TABLE batch.migrations SET SCHEMA public`);
    await before.destroy();

    release = await prepareMigrations(config.db);
    const upgraded = await new DataSource(dataSourceOptions(config)).initialize().finally(release);
    try {
      const tables = await upgraded.query(`SELECT schemaname FROM pg_tables WHERE tablename = 'migrations'`);
      assert.deepEqual(tables, [{ schemaname: 'batch' }], 'moved, not copied');
      assert.equal((await upgraded.query(`SELECT count(*)::int AS n FROM batch.migrations`))[0].n, MIGRATIONS.length, 'none ran again');
    } finally {
      await upgraded.destroy();
    }
  });
});
