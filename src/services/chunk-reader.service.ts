import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { ClaimedOperation, ItemReader } from '../interfaces/chunk.interfaces';
import type { OperationType } from '../interfaces/operation.interfaces';
import { INGEST_LOCK } from './ingest-buffer.service';

/** Key space of the transaction-scoped advisory locks that give one target to one worker at a time. */
const TARGET_LOCK_SPACE = 4242;

/**
 * Claims pending operations in the contract's order of application: `priority DESC, id`, due ones only.
 *
 * - The id horizon: ids are allocated before their insert commits, so a larger id can become visible before a
 *   smaller one. The reader reads the sequence, then waits for every ingest transaction that could hold an id
 *   at or below it (they hold INGEST_LOCK shared), and claims only up to that horizon: no smaller id can appear
 *   later, and per target nothing is applied ahead of an operation created before it.
 * - One worker per target: a transaction-scoped advisory lock per target; targets locked elsewhere are left.
 * - Rows are locked `FOR UPDATE SKIP LOCKED`; the lock is the claim, released by commit or rollback.
 */
@Injectable()
export class ChunkReader extends ItemReader {
  async read(tx: PoolClient, limit: number): Promise<ClaimedOperation[]> {
    const [{ horizon }] = (await tx.query<{ horizon: string }>('SELECT batch.ingest_horizon($1) AS horizon', [INGEST_LOCK])).rows;
    const due = `o.status = 'PENDING' AND o.id <= $1 AND (o.not_before IS NULL OR o.not_before <= now())`;
    const { rows: locked } = await tx.query<{ target: string }>(
      `WITH candidates AS MATERIALIZED (
         SELECT DISTINCT target FROM (SELECT o.target FROM batch.operations o WHERE ${due} ORDER BY o.priority DESC, o.id LIMIT $2) p)
       SELECT target FROM candidates WHERE pg_try_advisory_xact_lock($3, hashtext(target))`,
      [horizon, limit, TARGET_LOCK_SPACE],
    );
    if (locked.length === 0) return [];
    const { rows } = await tx.query<ClaimRow>(
      `SELECT o.id, o.client_id, c.name AS client_name, o.target, o.type, o.idempotency_key, o.label,
              coalesce(o.shape, batch.shape_of(o.type, o.row_values, o.row_key, o.conflict_key)) AS shape, coalesce(o.identity, '') AS identity
         FROM batch.operations o JOIN batch.clients c ON c.id = o.client_id
        WHERE ${due} AND o.target = ANY($2)
        ORDER BY o.priority DESC, o.id
        LIMIT $3
        FOR UPDATE OF o SKIP LOCKED`,
      [horizon, locked.map((l) => l.target), limit],
    );
    return rows.map((r) => ({
      id: r.id,
      clientId: r.client_id,
      clientName: r.client_name,
      target: r.target,
      type: r.type,
      shape: r.shape,
      identity: r.identity,
      idempotencyKey: r.idempotency_key,
      label: r.label,
    }));
  }
}

interface ClaimRow {
  id: string;
  client_id: string;
  client_name: string;
  target: string;
  type: OperationType;
  shape: string;
  identity: string;
  idempotency_key: string | null;
  label: string | null;
}
