import { Injectable, Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PoolClient } from 'pg';
import { Database, DEFINITIONS } from './database';
import { isConnectionError } from './database-error';
import { NamedDatabases } from './named-databases';
import { transactionOn } from './pg-client';
import type { StepRun } from '../jobs/job-definition';
import type { IJobReject, StepCounts } from '../../interfaces/job.interfaces';

/** The schema the service keeps in a database other than its own: the ledger, and the writer's functions. */
export const LEDGER_SCHEMA = 'batch_ledger';

/** The writers' functions, as the queue's definitions define them in `batch`: a target's database needs them. */
const WRITER_FUNCTIONS = [
  'apply-folded.sql',
  'apply-in-parts.sql',
  'array-literal.sql',
  'refused-values.sql', // an import's
  'through-key-index.sql',
];

/**
 * What the service needs in a database it writes into, as one script (docs/target-database.sql gives it to a DBA whose
 * service user may not create a schema): the ledger of applied chunks and the writer's functions, in `batch_ledger`.
 * Idempotent; the schema's comment names its version, so a service that finds it current runs nothing.
 */
export function targetDatabaseSql(): string {
  const functions = WRITER_FUNCTIONS.map((file) =>
    readFileSync(join(DEFINITIONS, file), 'utf8').replace(/\bbatch\./g, `${LEDGER_SCHEMA}.`),
  );
  const body = [
    `CREATE SCHEMA IF NOT EXISTS ${LEDGER_SCHEMA};`,
    `-- A row per chunk of a queue applied here, written in the transaction of its statements: the ids of its queue and
-- of the chunk there, and its outcomes, from which a chunk whose queue did not record them (its worker stopped
-- between the two commits) is settled without being applied again.
CREATE TABLE IF NOT EXISTS ${LEDGER_SCHEMA}.applied_chunks (
  queue uuid NOT NULL,
  chunk_id bigint NOT NULL,
  outcomes json,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue, chunk_id));`,
    `-- Per step (a partition's, in a partitioned step) of a job instance writing here, how far it is: written in the
-- transaction of each chunk's rows, so that a restart after a stop between that commit and the queue's goes on from
-- here, without writing a chunk twice.
CREATE TABLE IF NOT EXISTS ${LEDGER_SCHEMA}.job_positions (
  queue uuid NOT NULL,
  step text NOT NULL,
  position text,
  done bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue, step));
-- The last chunk's counts and rejects, for the step to record them where it goes on from here.
ALTER TABLE ${LEDGER_SCHEMA}.job_positions ADD COLUMN IF NOT EXISTS last_chunk json;`,
    ...functions,
  ].join('\n');
  return `${body}\nCOMMENT ON SCHEMA ${LEDGER_SCHEMA} IS 'batch-service ${version(body)}';\n`;
}

function version(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** A database's ledger cannot be made current (its schema cannot be created there): its chunks wait. */
export class LedgerUnavailable extends Error {
  constructor(database: string, cause: Error) {
    super(`database ${database}: ${LEDGER_SCHEMA} is not there and cannot be created (${cause.message})`, { cause });
  }
}

/** How far a job's step got: its position (as the job writes it) and a count that only grows (rows, bytes). */
export interface StepPosition {
  position: string | null;
  done: number;
}

/** A step's position as its ledger row holds it, with what its last chunk there counted and rejected. */
interface SavedPosition extends StepPosition {
  lastChunk: { counts: StepCounts; rejects: IJobReject[] } | null;
}

/** A chunk's record in a target database's ledger: null while it is not there (it was not applied). */
export type LedgerEntry = { outcomes: unknown } | null;

/**
 * The ledgers of the databases the queue writes into (DESIGN: prepare here, apply there with a ledger row, settle
 * here). A database's `batch_ledger` is made current the first time a chunk goes there (again after a failure): where
 * the service's user may not create it, the chunk waits and the log says to run docs/target-database.sql.
 */
@Injectable()
export class TargetLedgers {
  private readonly logger = new Logger(TargetLedgers.name);
  private readonly ready = new Map<string, Promise<void>>();
  private queueId: Promise<string> | null = null;
  private readonly script = targetDatabaseSql();

  constructor(
    private readonly db: Database,
    private readonly databases: NamedDatabases,
  ) {}

  /** This queue's id (batch.queue), which the ledgers key its chunks by. */
  queue(): Promise<string> {
    this.queueId ??= this.db.query<{ id: string }>('SELECT id FROM batch.queue').then(([row]) => row.id);
    return this.queueId;
  }

  /** Makes `database`'s ledger current (once per process, again after a failure). */
  ensure(database: string): Promise<void> {
    let ready = this.ready.get(database);
    if (!ready) {
      ready = this.create(database);
      ready.catch(() => this.ready.delete(database));
      this.ready.set(database, ready);
    }
    return ready;
  }

  private async create(database: string): Promise<void> {
    const current = this.script.match(/COMMENT ON SCHEMA \S+ IS '(.*)';/)![1];
    const [found] = await this.databases.query<{ comment: string | null }>(
      database,
      `SELECT obj_description(oid, 'pg_namespace') AS comment FROM pg_namespace WHERE nspname = $1`,
      [LEDGER_SCHEMA],
    );
    if (found?.comment === current) return;
    try {
      // one process at a time: CREATE OR REPLACE of one function by two at once fails one of them
      await this.databases.query(
        database,
        `SELECT pg_advisory_xact_lock(hashtext('${LEDGER_SCHEMA}'));\n${this.script}`,
      );
    } catch (error) {
      if (isConnectionError(error)) throw error;
      this.logger.error(
        `database ${database}: ${LEDGER_SCHEMA} cannot be made current (${(error as Error).message}); its operations ` +
          `wait: run docs/target-database.sql there as a user who may`,
      );
      throw error;
    }
  }

  /**
   * Takes the chunk's row in the ledger, first thing in its transaction `tx` there: true where it is this
   * transaction's to apply; false where the chunk was applied before (the row was there, or another worker's
   * transaction committed it meanwhile: the insert waits for it).
   */
  async take(tx: PoolClient, chunkId: string): Promise<boolean> {
    const queue = await this.queue();
    const { rowCount } = await waitingAsLong(tx, () =>
      tx.query(`INSERT INTO ${LEDGER_SCHEMA}.applied_chunks (queue, chunk_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [
        queue,
        chunkId,
      ]),
    );
    return rowCount === 1;
  }

  /** Writes the chunk's outcomes into the row `take` inserted, in the same transaction. */
  async record(tx: PoolClient, chunkId: string, outcomes: unknown): Promise<void> {
    await tx.query(`UPDATE ${LEDGER_SCHEMA}.applied_chunks SET outcomes = $3 WHERE queue = $1 AND chunk_id = $2`, [
      await this.queue(),
      chunkId,
      JSON.stringify(outcomes),
    ]);
  }

  /**
   * A job's chunk whose rows go into `database` (DESIGN: the position commits with the rows there): `chunk.write` in a
   * transaction there, committed with the step's position after it (`chunk.position()`) in the ledger; the job's chunk
   * transaction here commits the step's context after. Where the ledger is ahead of the context (`doneHere`: the
   * worker stopped between the two commits), `chunk.catchUp` takes the ledger's position instead, and nothing is
   * written again.
   */
  async jobChunk<T>(
    database: string,
    step: StepRun,
    doneHere: number,
    chunk: {
      write(tx: PoolClient): Promise<T>;
      position(): StepPosition;
      catchUp(saved: StepPosition): T;
    },
  ): Promise<T> {
    await this.ensure(database);
    const key = `${step.job.instanceId}/${step.name}/${step.partition ?? ''}`;
    return this.databases.using(database, (connection) =>
      transactionOn(
        connection,
        async (tx) => {
          const saved = await this.position(tx, key);
          if (saved.done > doneHere) {
            // the chunk's counts and rejects, committed there with its rows, are recorded with the step here now
            if (saved.lastChunk) {
              Object.assign(step.counts, saved.lastChunk.counts);
              for (const reject of saved.lastChunk.rejects) step.reject(reject);
            }
            return chunk.catchUp(saved);
          }
          const result = await chunk.write(tx);
          const { position, done } = chunk.position();
          const lastChunk = JSON.stringify({ counts: step.counts, rejects: step.rejects });
          await tx.query(
            `UPDATE ${LEDGER_SCHEMA}.job_positions SET position = $3, done = $4, last_chunk = $5, updated_at = now()
              WHERE queue = $1 AND step = $2`,
            [await this.queue(), key, position, done, lastChunk],
          );
          return result;
        },
        LEDGER_TRANSACTION,
      ),
    );
  }

  /**
   * How far a job's step got writing here (none yet: no position, 0 done), its row locked to the end of `tx`. The row
   * is made first where there is none, so that a second worker on the step's first chunk waits for the first one's
   * commit there as it waits on any later chunk (a lock on no row would let both write).
   */
  private async position(tx: PoolClient, step: string): Promise<SavedPosition> {
    const queue = await this.queue();
    const { rows } = await waitingAsLong(tx, async () => {
      await tx.query(
        `INSERT INTO ${LEDGER_SCHEMA}.job_positions (queue, step, position, done) VALUES ($1, $2, NULL, 0)
         ON CONFLICT DO NOTHING`,
        [queue, step],
      );
      return tx.query<{ position: string | null; done: string; last_chunk: SavedPosition['lastChunk'] }>(
        `SELECT position, done, last_chunk FROM ${LEDGER_SCHEMA}.job_positions
          WHERE queue = $1 AND step = $2 FOR UPDATE`,
        [queue, step],
      );
    });
    return { position: rows[0].position, done: Number(rows[0].done), lastChunk: rows[0].last_chunk };
  }

  /** The chunk's outcomes as applied, where it was. */
  async find(database: string, chunkId: string): Promise<LedgerEntry> {
    const [row] = await this.databases.query<{ outcomes: unknown }>(
      database,
      `SELECT outcomes FROM ${LEDGER_SCHEMA}.applied_chunks WHERE queue = $1 AND chunk_id = $2`,
      [await this.queue(), chunkId],
    );
    return row ?? null;
  }

  /**
   * Deletes the rows of this queue's chunks applied before `cutoff` in every database it reaches, but for chunks still
   * to be settled, and the positions of job steps not written since, but for instances that may still go on (one whose
   * worker stopped between the two commits is restarted from that row, however late); returns how many.
   */
  async deleteBefore(cutoff: Date): Promise<number> {
    const prepared = (await this.db.query<{ id: string }>('SELECT id FROM batch.prepared_chunks')).map((row) => row.id);
    const unfinished = (
      await this.db.query<{ id: string }>(
        `SELECT DISTINCT e.instance_id::text AS id FROM batch.job_executions e
          WHERE e.status NOT IN ('COMPLETED', 'ABANDONED')
            AND NOT EXISTS (SELECT FROM batch.job_executions c WHERE c.instance_id = e.instance_id AND c.status = 'COMPLETED')`,
      )
    ).map((row) => row.id);
    let deleted = 0;
    for (const database of this.databases.all().filter((d) => d.up === true && this.ready.has(d.name))) {
      const rows = await this.databases.query<{ n: string }>(
        database.name,
        `WITH chunks AS (DELETE FROM ${LEDGER_SCHEMA}.applied_chunks
                           WHERE queue = $1 AND applied_at < $2 AND chunk_id <> ALL ($3::bigint[]) RETURNING 1),
              positions AS (DELETE FROM ${LEDGER_SCHEMA}.job_positions
                              WHERE queue = $1 AND updated_at < $2 AND split_part(step, '/', 1) <> ALL ($4::text[])
                              RETURNING 1)
         SELECT (SELECT count(*) FROM chunks) + (SELECT count(*) FROM positions) AS n`,
        [await this.queue(), cutoff, prepared, unfinished],
      );
      deleted += Number(rows[0].n);
    }
    return deleted;
  }
}

/**
 * How a transaction with a ledger row begins there: read committed, whatever that database's default, for its row to
 * wait for another worker's transaction and then see what it committed (under repeatable read the wait ends in a
 * serialization failure).
 */
export const LEDGER_TRANSACTION = 'SET TRANSACTION ISOLATION LEVEL READ COMMITTED';

/**
 * `take` (the ledger's row taken or locked) with no lock or statement timeout, whatever that database sets: the row
 * may wait for the transaction of a worker whose lease ran out while it applied, and a timeout here would have this
 * worker give the chunk up, and the other one's commit would then go unsettled and be applied again.
 */
async function waitingAsLong<T>(tx: PoolClient, take: () => Promise<T>): Promise<T> {
  await tx.query('SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0');
  const taken = await take();
  await tx.query('SET LOCAL lock_timeout TO DEFAULT; SET LOCAL statement_timeout TO DEFAULT');
  return taken;
}
