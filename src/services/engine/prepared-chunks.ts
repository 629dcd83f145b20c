import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import type { ClaimedOperation } from '../../interfaces/chunk.interfaces';
import { AppConfig } from '../../config/app-config';
import { Database } from '../storage/database';
import { runParams } from '../storage/id-runs';
import { claimedChunk, claimedText } from './chunk-claimer.service';
import { WORKER } from './chunk-repository';

/** A chunk for targets in another database, between its commits (batch.prepared_chunks). */
export interface PreparedChunk {
  id: string;
  database: string;
  chunk: ClaimedOperation[];
  /** The times its database failed it. */
  attempts: number;
  /** This worker's hold of it: only the holder settles, postpones or drops it. */
  holder: string;
}

const FIELDS = 'id, database, targets, claimed, attempts, worker AS holder';

/**
 * Chunks for another database (BATCH_DATABASES) between their three commits: prepared here with their claim, applied
 * there with a ledger row (TargetLedgers), settled here. A worker holds a chunk it prepared, or took over once the lease
 * of the one before ran out, for BATCH_CHUNK_LEASE_MS: the ledger row says whether it was applied, so whoever finishes it never
 * applies it twice, and only its holder settles it.
 */
@Injectable()
export class PreparedChunks {
  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
  ) {}

  /** Records `chunk`, claimed in `tx` for `database` (its targets locked there): it is this worker's to finish. */
  async prepare(tx: PoolClient, database: string, chunk: ClaimedOperation[]): Promise<PreparedChunk> {
    const { targets, lines } = claimedText(chunk);
    const holder = newHolder();
    const { rows } = await tx.query<{ id: string }>(
      `INSERT INTO batch.prepared_chunks (database, targets, operations, claimed, worker, lease_until)
       SELECT $1, $2, range_agg(int8range(r.first_id, r.last_id, '[]')), $5, $6, now() + $7 * interval '1 millisecond'
         FROM unnest($3::bigint[], $4::bigint[]) AS r(first_id, last_id)
       RETURNING id`,
      [database, targets, ...runParams(chunk), lines, holder, this.config.poll.leaseMs],
    );
    return { id: rows[0].id, database, chunk, attempts: 0, holder };
  }

  /** A chunk of one of `databases` whose lease ran out, now held by this worker; null when there is none. */
  async takeOver(databases: string[]): Promise<PreparedChunk | null> {
    const [row] = await this.db.query<PreparedRow>(
      `UPDATE batch.prepared_chunks SET worker = $2, lease_until = now() + $3 * interval '1 millisecond'
        WHERE id = (SELECT id FROM batch.prepared_chunks WHERE lease_until < now() AND database = ANY ($1)
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING ${FIELDS}`,
      [databases, newHolder(), this.config.poll.leaseMs],
    );
    return row ? preparedOf(row) : null;
  }

  /** The holder's lease of the chunk made BATCH_CHUNK_LEASE_MS long again from now (while it applies it). */
  async renew(prepared: PreparedChunk): Promise<void> {
    await this.db.query(
      `UPDATE batch.prepared_chunks SET lease_until = now() + $3 * interval '1 millisecond' WHERE id = $1 AND worker = $2`,
      [prepared.id, prepared.holder, this.config.poll.leaseMs],
    );
  }

  /** Leaves the chunk to be tried again after `delayMs` (its database failed), by any worker. */
  async postpone(prepared: PreparedChunk, delayMs: number): Promise<void> {
    await this.db.query(
      `UPDATE batch.prepared_chunks SET attempts = attempts + 1, lease_until = now() + $3 * interval '1 millisecond'
        WHERE id = $1 AND worker = $2`,
      [prepared.id, prepared.holder, delayMs],
    );
  }

  /**
   * Deletes the chunk, settled in `tx` (or given up, without `tx`); false where this worker no longer holds it (its
   * lease ran out and another took it over): the chunk is that one's to settle.
   */
  async drop(prepared: PreparedChunk, tx?: PoolClient): Promise<boolean> {
    const sql = 'DELETE FROM batch.prepared_chunks WHERE id = $1 AND worker = $2';
    const params = [prepared.id, prepared.holder];
    const deleted = tx
      ? (await tx.query(sql, params)).rowCount
      : (await this.db.query(`${sql} RETURNING 1`, params)).length;
    return deleted === 1;
  }
}

interface PreparedRow {
  id: string;
  database: string;
  targets: string[];
  claimed: string;
  attempts: number;
  holder: string;
}

function preparedOf(row: PreparedRow): PreparedChunk {
  const { id, database, attempts, holder } = row;
  return { id, database, chunk: claimedChunk(row.targets, row.claimed), attempts, holder };
}

function newHolder(): string {
  return `${WORKER}/${randomUUID().slice(0, 8)}`;
}
