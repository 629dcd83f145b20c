import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { AppConfig } from '../../config/app-config';
import { ClaimedOperation, ItemReader } from '../../interfaces/chunk.interfaces';
import { INGEST_LOCK, TARGET_LOCK_SPACE } from '../storage/advisory-locks';

/** Scheduled operations made due per claim at most; more are made due by the next ones. */
const PROMOTIONS = 10_000;

/**
 * The targets with due operations, each with its first one in order of application (`priority DESC, id`), found by a
 * loose index scan of the pending set's due index: one descent per target, whatever the backlog. Scheduled
 * operations whose time has come are made due first (their targets are among those returned; the claim, a statement
 * of its own, sees them due), and the id horizon is taken (see ChunkReader); held targets are left out.
 */
export const TARGETS_SQL = `
  WITH RECURSIVE
  promoted AS (
    UPDATE batch.pending SET due_at = NULL
     WHERE id IN (SELECT id FROM batch.pending WHERE due_at <= now() ORDER BY due_at LIMIT ${PROMOTIONS} FOR UPDATE SKIP LOCKED)
    RETURNING target, priority, id, failures),
  horizon AS MATERIALIZED (SELECT batch.ingest_horizon(${INGEST_LOCK}) AS id),
  targets AS (
    (SELECT target FROM batch.pending WHERE due_at IS NULL ORDER BY target LIMIT 1)
    UNION ALL
    SELECT (SELECT p.target FROM batch.pending p WHERE p.due_at IS NULL AND p.target > t.target ORDER BY p.target LIMIT 1)
      FROM targets t WHERE t.target IS NOT NULL),
  heads AS (
    SELECT DISTINCT ON (target) target, priority, id, failures FROM (
      SELECT t.target, head.priority, head.id, head.failures
        FROM targets t
        CROSS JOIN LATERAL (SELECT p.priority, p.id, p.failures FROM batch.pending p
                             WHERE p.due_at IS NULL AND p.target = t.target ORDER BY p.priority DESC, p.id LIMIT 1) head
       WHERE t.target IS NOT NULL
      UNION ALL
      SELECT target, priority, id, failures FROM promoted) due
     ORDER BY target, priority DESC, id)
  SELECT (SELECT id FROM horizon) AS horizon, heads.target, heads.failures, h.chunk_size
    FROM heads LEFT JOIN batch.holds h ON h.target = heads.target
   WHERE h.until IS NULL OR h.until <= now()
   ORDER BY heads.priority DESC, heads.id`;

/**
 * Claims, target by target in the order given, each target's due operations up to the horizon in order of
 * application, until the chunk's count is reached and, per target, its share of the byte budget (the budget divided
 * among the targets): a target is locked (one worker per target) as the claim reaches it, so targets it does not reach
 * stay free for other workers. Each target's walk stops at its cap: its cost does not depend on how many operations
 * are pending or scheduled. The claim is a delete from the pending set (undone if the chunk rolls back), which holds
 * all the claim returns: each operation's id, client, attempts and failures, its planning (shape, identity), and what
 * its notification echoes (idempotency key, label); nothing is read from the operations themselves.
 *
 * What a walk takes is deleted by runs of consecutive ids (within a target and a priority, the walk's ids less their
 * places in it are equal along a run), a range of the primary key each, where a lookup per id read ~3 times the
 * buffers; the walk's order serves its running sums, so nothing is sorted. The rows come back in no particular order:
 * the reader orders them.
 */
export const CLAIM_SQL = `
  WITH walked AS MATERIALIZED (
    SELECT t.n, c.id, c.priority, c.bytes, c.running, c.id - c.place AS run
      FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS t(target, cap, n)
      CROSS JOIN LATERAL (
        SELECT q.id, q.priority, q.bytes, sum(q.bytes) OVER walk AS running, row_number() OVER walk AS place
          FROM batch.pending q
         WHERE q.due_at IS NULL AND q.target = t.target AND q.id <= $3
        WINDOW walk AS (ORDER BY q.priority DESC, q.id)
         ORDER BY q.priority DESC, q.id LIMIT t.cap) c
     WHERE pg_try_advisory_xact_lock(${TARGET_LOCK_SPACE}, hashtext(t.target))
     LIMIT $4),
  runs AS (
    SELECT min(id) AS first_id, max(id) AS last_id FROM walked
     WHERE running - bytes < $5 / cardinality($1::text[]) GROUP BY n, priority, run)
  DELETE FROM batch.pending p USING runs WHERE p.id BETWEEN runs.first_id AND runs.last_id
  RETURNING p.id, p.client_id, p.target, p.priority, p.attempts, p.failures, p.bytes, p.shape, p.identity, p.idempotency_key, p.label`;

/** A row of CLAIM_SQL as node-postgres gives it in array mode (its objects took twice as long, 50 ms for 20,000). */
type ClaimedRow = [
  string,
  string,
  string,
  number,
  number,
  number,
  number,
  string,
  string,
  string | null,
  string | null,
];

/** A claimed operation: an object of one shape for all of them, which the planner reads many times. */
function claimed([
  id,
  clientId,
  target,
  priority,
  attempts,
  failures,
  bytes,
  shape,
  identity,
  idempotencyKey,
  label,
]: ClaimedRow): ClaimedOperation {
  return { id, clientId, target, shape, identity, priority, attempts, failures, bytes, idempotencyKey, label };
}

/** The order of application across a chunk: priority first, then id (decimal strings: the shorter is the smaller). */
function inOrderOfApplication(a: ClaimedOperation, b: ClaimedOperation): number {
  return b.priority - a.priority || a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Claims pending operations in the contract's order of application: per target, `priority DESC, id`, due ones only.
 *
 * - The id horizon: ids are allocated before their insert commits, so a larger id can become visible before a
 *   smaller one. The reader reads the sequence, then waits for every ingest transaction that could hold an id
 *   at or below it (they hold INGEST_LOCK shared), and claims only up to that horizon, in a statement of its own
 *   (a snapshot taken after that wait): no smaller id can appear later, so per target nothing is applied ahead
 *   of an operation created before it.
 * - One worker per target: a transaction-scoped advisory lock per target; targets locked elsewhere are left.
 * - A target whose first operation was in a chunk that failed as a whole is claimed alone, as many operations as its
 *   hold says (the retry policy's: retried whole, then split); such chunks take turns with the other targets'
 *   chunks, so that those keep flowing while it is worked out.
 */
@Injectable()
export class ChunkReader extends ItemReader {
  private lastWasSuspect = false;

  constructor(private readonly config: AppConfig) {
    super();
  }

  async read(tx: PoolClient, limit: number): Promise<ClaimedOperation[]> {
    const { rows: targets } = await tx.query<{
      horizon: string;
      target: string;
      failures: number;
      chunk_size: number | null;
    }>(TARGETS_SQL);
    if (targets.length === 0) return [];
    const suspect = targets.find((t) => t.failures > 0);
    const healthy = targets.filter((t) => t.failures === 0);
    this.lastWasSuspect = suspect !== undefined && (healthy.length === 0 || !this.lastWasSuspect);
    const claims = this.lastWasSuspect
      ? [{ target: suspect!.target, cap: Math.min(limit, suspect!.chunk_size ?? limit) }]
      : healthy.map((t) => ({ target: t.target, cap: limit }));
    const { rows } = await tx.query<ClaimedRow>({
      text: CLAIM_SQL,
      values: [
        claims.map((c) => c.target),
        claims.map((c) => c.cap),
        targets[0].horizon,
        limit,
        this.config.poll.maxChunkBytes,
      ],
      rowMode: 'array',
    });
    return rows.map(claimed).sort(inOrderOfApplication);
  }
}
