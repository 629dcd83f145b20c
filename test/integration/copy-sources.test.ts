import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BatchError } from '../../src/services/batch-error';
import { Jobs, startJobs } from '../support/jobs-app';

/**
 * What a copy reads is what it counts and where it goes on from, whatever the target does with the rows (a trigger
 * that drops or rewrites them, another collation of the key) and whatever the key is (a copy refuses a key that could
 * read a row twice or never).
 */
describe('copy: every source row exactly once, whatever the target does with it', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['*'], sources: ['*'] });
    await jobs.db.query(`
      CREATE TABLE src (id int PRIMARY KEY, k int NOT NULL UNIQUE, nk int UNIQUE, third int, note text);
      INSERT INTO src SELECT g, g, CASE WHEN g % 5 = 0 THEN NULL ELSE g END, g / 3, 'n' || g FROM generate_series(1, 1000) g;
      CREATE TABLE dropping (id int PRIMARY KEY, note text);
      CREATE FUNCTION drop_even() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN IF NEW.id % 2 = 0 THEN RETURN NULL; END IF; RETURN NEW; END $$;
      CREATE TRIGGER drop_even BEFORE INSERT ON dropping FOR EACH ROW EXECUTE FUNCTION drop_even();
      CREATE TABLE rewriting (id int PRIMARY KEY, note text);
      CREATE FUNCTION shift_key() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN NEW.id := NEW.id + 100000; RETURN NEW; END $$;
      CREATE TRIGGER shift_key BEFORE INSERT ON rewriting FOR EACH ROW EXECUTE FUNCTION shift_key();
      CREATE TABLE words_c (w text COLLATE "C" PRIMARY KEY, n int);
      INSERT INTO words_c SELECT w, row_number() OVER () FROM unnest(ARRAY['a', 'B', 'c', 'D', 'e', 'F', 'g', 'H', 'i', 'J']) w;
      CREATE TABLE words_icu (w text COLLATE "und-x-icu" PRIMARY KEY, n int);
      CREATE TABLE plain (id int, note text);
      CREATE TABLE renamed (ref int PRIMARY KEY, label text, untouched text DEFAULT 'kept');
      CREATE VIEW repeated AS SELECT third AS id, note FROM src;
      CREATE VIEW distinct_ids AS SELECT id, note FROM src WHERE id <= 100;
      CREATE VIEW json_keyed AS SELECT to_json(id) AS id, note FROM src;
      CREATE TABLE computed (id int PRIMARY KEY, twice int GENERATED ALWAYS AS (id * 2) STORED);`);
  });
  after(() => jobs.close());

  async function copy(parameters: Record<string, unknown>, chunkSize: number) {
    const launched = await jobs.operator.launch(jobs.client, 'copy', parameters, { chunkSize });
    await jobs.runAll();
    return jobs.execution(launched.id);
  }

  it('a trigger that drops rows: every row read, the dropped ones filtered, the copy goes on to the end', async () => {
    const done = await copy({ source: 'src', target: 'dropping' }, 10);
    assert.equal(done.status, 'COMPLETED');
    const [step] = done.steps;
    assert.deepEqual([step.readCount, step.writeCount, step.filterCount], [1000, 500, 500]);
    assert.equal(await count('dropping'), 500);
  });

  it('a trigger that rewrites the key: the position is the source key read, not the key written', async () => {
    const done = await copy({ source: 'src', target: 'rewriting', to: 300 }, 7);
    assert.equal(done.status, 'COMPLETED');
    assert.deepEqual([done.steps[0].readCount, done.steps[0].writeCount], [300, 300]);
    assert.equal(await count('rewriting'), 300);
  });

  it('a target that orders the key by another collation: each row once, in the source order', async () => {
    const done = await copy({ source: 'words_c', target: 'words_icu' }, 3);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(done.steps[0].readCount, 10);
    const rows = await jobs.db.query<{ w: string }>(`SELECT w FROM words_icu ORDER BY w COLLATE "C"`);
    assert.deepEqual(
      rows.map((r) => r.w),
      ['B', 'D', 'F', 'H', 'J', 'a', 'c', 'e', 'g', 'i'],
    );
  });

  it('a key that is not unique, may be NULL or has no index of its own is refused at launch, saying why', async () => {
    for (const [source, keyColumn] of [
      ['src', 'third'],
      ['src', 'nk'],
      ['plain', 'id'],
      ['repeated', 'id'],
    ]) {
      const error = await jobs.operator
        .launch(jobs.client, 'copy', { source, target: 'dropping', keyColumn, columns: { id: 'id' } }, {})
        .then(
          () => assert.fail(`${source}.${keyColumn} was accepted`),
          (e: unknown) => e as BatchError,
        );
      assert.equal(error.code, 'VALIDATION_FAILED', error.message);
      assert.match(error.message, /keyColumn: must be unique and NOT NULL/);
    }
    assert.equal(
      (
        await jobs.db.query(
          `SELECT 1 FROM batch.job_executions WHERE job = 'copy' AND parameters->>'keyColumn' IS NOT NULL`,
        )
      ).length,
      0,
    );
    const k = await copy({ source: 'src', target: 'rewriting', keyColumn: 'k', from: 300, to: 320 }, 5);
    assert.equal(k.status, 'COMPLETED', 'a NOT NULL column unique by its own index is a key');
    const view = await copy({ source: 'distinct_ids', target: 'plain', keyColumn: 'id', to: 50 }, 5);
    assert.equal(view.status, 'COMPLETED', "a view's key is checked by reading it");
  });

  it('refuses at launch a copy into its own source, onto a generated column, or by a key without equality', async () => {
    for (const [parameters, pattern] of [
      [{ source: 'src', target: 'public.src' }, /source: is the target itself/],
      [{ source: 'src', target: 'computed', columns: { id: 'id', twice: 'k' } }, /twice, which is generated/],
      [{ source: 'json_keyed', target: 'plain', keyColumn: 'id' }, /keyColumn: must be of a type with equality/],
    ] as const) {
      const error = await jobs.operator.launch(jobs.client, 'copy', parameters, {}).then(
        () => assert.fail(`${JSON.stringify(parameters)} was accepted`),
        (e: unknown) => e as BatchError,
      );
      assert.deepEqual([error.code, pattern.test(error.message)], ['VALIDATION_FAILED', true], error.message);
    }
  });

  it('columns maps target columns to source columns by other names; the rest take their defaults', async () => {
    const done = await copy({ source: 'src', target: 'renamed', columns: { ref: 'k', label: 'note' }, to: 40 }, 15);
    assert.equal(done.status, 'COMPLETED');
    assert.equal(done.steps[0].writeCount, 40);
    const rows = await jobs.db.query<{ ref: number; label: string; untouched: string }>(
      `SELECT ref, label, untouched FROM renamed ORDER BY ref`,
    );
    assert.deepEqual(rows[0], { ref: 1, label: 'n1', untouched: 'kept' });
    assert.deepEqual(
      rows.map((r) => [r.ref, r.label]),
      Array.from({ length: 40 }, (_, i) => [i + 1, `n${i + 1}`]),
    );
  });

  async function count(table: string): Promise<number> {
    return Number((await jobs.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0].n);
  }
});
