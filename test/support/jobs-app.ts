import type { Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Readable } from 'node:stream';
import type { INestApplicationContext } from '@nestjs/common';
import { AppModule } from '../../src/app.module';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { AuthenticatedClient, ClientService } from '../../src/services/access/client.service';
import { ImportUploads, UploadRequest } from '../../src/services/imports/import-uploads.service';
import { JobOperator } from '../../src/services/jobs/job-operator.service';
import { JobLeases } from '../../src/services/jobs/repository/job-leases';
import { Hold, JobRunner } from '../../src/services/jobs/job-runner.service';
import { createTestDatabase, TestDatabase } from './test-database';

/** The service's modules on a fresh database with a client `copier`, its jobs run by the test as a worker would. */
export interface Jobs {
  db: TestDatabase;
  app: INestApplicationContext;
  operator: JobOperator;
  leases: JobLeases;
  client: AuthenticatedClient;
  /** Runs what is claimable (executions, then partitions) until nothing is, as one worker named `owner`. */
  runAll(owner?: string): Promise<void>;
  execution(id: string): Promise<IJobExecution>;
  close(): Promise<void>;
}

/** `grants`: the client's targets and sources; `modules`: more modules (jobs of a test's own). */
export async function startJobs(
  grants: { targets: string[]; sources?: string[] },
  modules: Type[] = [],
  env: Record<string, string> = {},
): Promise<Jobs> {
  const db = await createTestDatabase(env);
  const app = await NestFactory.createApplicationContext(
    { module: class TestRoot {}, imports: [AppModule.forRoot(db.config), ...modules] },
    { logger: ['error'] },
  );
  const clients = app.get(ClientService);
  const created = await clients.create({ name: 'copier', targets: grants.targets });
  await db.query(`UPDATE batch.clients SET sources = $1 WHERE name = 'copier'`, [grants.sources ?? []]);
  const client = (await clients.authenticate(created.apiKey))!;
  const leases = app.get(JobLeases);
  const runner = app.get(JobRunner);
  const operator = app.get(JobOperator);
  return {
    db,
    app,
    operator,
    leases,
    client,
    runAll: async (owner = 'worker-a') => {
      for (;;) {
        const execution = await leases.claimExecution(owner, 30_000);
        if (execution) {
          await runner.runExecution(owner, execution, new Hold(execution.id));
          continue;
        }
        const partition = await leases.claimPartition(owner, 30_000);
        if (!partition) return;
        await runner.runPartition(owner, partition, new Hold(null));
      }
    },
    execution: (id) => operator.get(client, id),
    close: async () => {
      await app.close();
      await db.close();
    },
  };
}

/** An upload of `body` by the jobs' client with the query given (CSV unless the headers say otherwise), as one piece. */
export function upload(
  jobs: Jobs,
  query: Record<string, string>,
  body: string | Buffer,
  headers: Partial<UploadRequest> = {},
): Promise<IJobExecution> {
  return jobs.app
    .get(ImportUploads)
    .upload(
      jobs.client,
      { query, contentType: 'text/csv', contentEncoding: undefined, ...headers },
      Readable.from([typeof body === 'string' ? Buffer.from(body) : body]),
    );
}
