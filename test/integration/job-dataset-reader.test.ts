import assert from 'node:assert/strict';
import { Injectable, Module } from '@nestjs/common';
import { after, before, describe, it } from 'node:test';
import type { PoolClient } from 'pg';
import { BatchJob, chunk, job, type JobDefinition } from '../../src/services/jobs';
import { datasetReader } from '../../src/services/imports/dataset-reader';
import { ImportFiles } from '../../src/services/imports/import-files';
import { Jobs, startJobs } from '../support/jobs-app';

type Item = Record<string, unknown>;

/** The record whose chunk fails (once: the test clears it). */
let failAt: string | null = null;

async function keep(tx: PoolClient, items: Item[]): Promise<void> {
  if (items.some((item) => item.name === failAt)) throw new Error('failing on purpose');
  await tx.query(`INSERT INTO kept (item) SELECT * FROM unnest($1::jsonb[])`, [items.map((i) => JSON.stringify(i))]);
}

/** A job that keeps each record of a data set of this format, two a chunk. */
function datasetJob(name: string, format: 'csv' | 'ndjson', files: ImportFiles): JobDefinition {
  return job(name)
    .describe(`reads an uploaded ${format} data set`)
    .parameter('sha256', { type: 'string', required: true, description: 'the data set' })
    .option('skipLimit', { type: 'integer', description: 'records skipped at most' })
    .step('keep', chunk<Item>({ chunkSize: 2, reader: datasetReader({ files, format }), writer: keep }))
    .build();
}

@BatchJob()
@Injectable()
class CsvDatasetJob {
  readonly definition: JobDefinition;
  constructor(files: ImportFiles) {
    this.definition = datasetJob('dataset-csv', 'csv', files);
  }
}

@BatchJob()
@Injectable()
class NdjsonDatasetJob {
  readonly definition: JobDefinition;
  constructor(files: ImportFiles) {
    this.definition = datasetJob('dataset-ndjson', 'ndjson', files);
  }
}

@Module({ providers: [CsvDatasetJob, NdjsonDatasetJob] })
class DatasetJobsModule {}

/** datasetReader: an uploaded data set's records as items, restartable after its last committed chunk. */
describe('job toolkit: the data set reader', () => {
  let jobs: Jobs;
  before(async () => {
    jobs = await startJobs({ targets: ['public.kept'] }, [DatasetJobsModule]);
    await jobs.db.query(`CREATE TABLE kept (at serial PRIMARY KEY, item jsonb NOT NULL)`);
  });
  after(() => jobs.close());

  async function store(sha256: string, text: string): Promise<void> {
    const data = Buffer.from(text);
    const [{ id }] = await jobs.db.query<{ id: string }>(
      `INSERT INTO batch.import_files (client_id, sha256, gzip, bytes) VALUES ($1, $2, false, $3) RETURNING id`,
      [jobs.client.id, sha256, data.length],
    );
    await jobs.db.query(`INSERT INTO batch.import_blocks (file_id, byte_offset, data) VALUES ($1, 0, $2)`, [id, data]);
  }

  async function failThenRestart(name: string, parameters: Item) {
    await jobs.db.query(`TRUNCATE kept RESTART IDENTITY`);
    const first = await jobs.operator.launch(jobs.client, name, parameters, { skipLimit: 1 });
    await jobs.runAll();
    assert.equal((await jobs.execution(first.id)).status, 'FAILED');
    failAt = null;
    const second = await jobs.operator.restart(jobs.client, first.id);
    await jobs.runAll();
    const done = await jobs.execution(second.id);
    const kept = await jobs.db.query<{ item: Item }>(`SELECT item FROM kept ORDER BY at`);
    // the restart's own rejects (the failed execution lists those that made it fail, the forced one among them)
    const rejects = await jobs.db.query<{ line: string; code: string }>(
      `SELECT line, code FROM batch.job_rejects WHERE job_execution_id = $1 ORDER BY id`,
      [second.id],
    );
    return { done, kept: kept.map((k) => k.item), rejects };
  }

  it('CSV: a header, a quoted newline, a record of too many fields skipped; on after a restart', async () => {
    await store('csv-1', 'id,name\r\n1,a\r\n2,"b\nb"\r\n3,c,extra\r\n4,d\r\n5,e\r\n6,"f ""x"""\r\n');
    failAt = 'e';
    const { done, kept, rejects } = await failThenRestart('dataset-csv', { sha256: 'csv-1' });
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual(kept, [
      { id: '1', name: 'a' },
      { id: '2', name: 'b\nb' },
      { id: '4', name: 'd' },
      { id: '5', name: 'e' },
      { id: '6', name: 'f "x"' },
    ]);
    assert.deepEqual(rejects, [{ line: '5', code: '22P04' }]);
  });

  it('NDJSON: objects, blank lines passed over, a malformed record skipped with its line', async () => {
    await store('nd-1', '{"name":"a","n":1}\n\n{"name":"b"}\n{oops\n{"name":"c"}\n{"name":"d"}\n{"name":"e"}');
    failAt = 'd';
    const { done, kept, rejects } = await failThenRestart('dataset-ndjson', { sha256: 'nd-1' });
    assert.equal(done.exitStatus?.code, 'COMPLETED_WITH_SKIPS');
    assert.deepEqual(
      kept.map((k) => k.name),
      ['a', 'b', 'c', 'd', 'e'],
    );
    assert.deepEqual(rejects, [{ line: '4', code: 'MALFORMED_JSON' }]);
  });
});
