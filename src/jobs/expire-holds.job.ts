import { Injectable } from '@nestjs/common';
import { BatchJob, CatalogService, chunk, job, pagingReader, tableWriter, type JobDefinition } from '../services/jobs';

/**
 * An example of a team's own job (the README's): deletes the seat holds that expired before `before`, 5,000 a
 * transaction, restartable where it stopped. It runs only where it is listed in TeamJobsModule.
 */
@BatchJob()
@Injectable()
export class ExpireHoldsJob {
  readonly definition: JobDefinition;

  constructor(catalog: CatalogService) {
    this.definition = job('expire-holds')
      .describe('Deletes expired seat holds')
      .parameter('before', { type: 'timestamp', required: true, description: 'holds that expired before this' })
      .grants(async () => ({ reads: ['public.holds'], writes: ['public.holds'] }))
      .step(
        'delete',
        chunk({
          chunkSize: 5000,
          // keyset-paged by id: the last id read is saved with each chunk, and a restart goes on after it
          reader: pagingReader({
            table: 'holds',
            columns: ['id'],
            where: 'expires_at < $1',
            params: (step) => [step.job.parameters.before],
            key: 'id',
          }),
          // each chunk applied as the queue applies deletes: one DELETE for the chunk, checked and planned as operations
          writer: tableWriter({ catalog, table: 'holds', type: 'delete' }),
        }),
      )
      .build();
  }
}
