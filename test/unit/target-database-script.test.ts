import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TARGET_DATABASE_FILE, targetDatabaseScript } from '../../scripts/schema';

describe('docs/target-database.sql', () => {
  it('is what the service creates in a target database: run `npm run schema` after changing it', () => {
    assert.equal(readFileSync(TARGET_DATABASE_FILE, 'utf8'), targetDatabaseScript());
  });

  it("names only the ledger's schema, never the queue's", () => {
    assert.doesNotMatch(targetDatabaseScript(), /\bbatch\./);
  });
});
