import { Injectable } from '@nestjs/common';
import { BatchJob, chunk, job } from '../services/jobs';

/**
 * An example of a team's own job (the README's): deletes the seat holds that expired before `before`, 5,000 a
 * transaction, restartable where it stopped. It runs only where it is listed in TeamJobsModule.
 */
@BatchJob()
@Injectable()
export class ExpireHoldsJob {
  readonly definition = job('expire-holds')
    .describe('Deletes expired seat holds')
    .parameter('before', { type: 'timestamp', required: true, description: 'holds that expired before this' })
    .grants(async () => ({ reads: ['public.holds'], writes: ['public.holds'] }))
    .step(
      'delete',
      chunk<{ id: string }>({
        chunkSize: 5000,
        // the position (the last id deleted) is saved with each chunk: a restart goes on after it
        reader: async (tx, step, count) => {
          const { rows } = await tx.query<{ id: string }>(
            `SELECT id FROM holds WHERE expires_at < $1 AND id > $2 ORDER BY id LIMIT $3`,
            [step.job.parameters.before, step.context.lastId ?? 0, count],
          );
          if (rows.length > 0) step.context.lastId = rows[rows.length - 1].id;
          return rows;
        },
        writer: async (tx, holds) => {
          await tx.query(`DELETE FROM holds WHERE id = ANY($1::bigint[])`, [holds.map((h) => h.id)]);
        },
      }),
    )
    .build();
}
