import { Injectable } from '@nestjs/common';
import type { OperationStatus } from '../../interfaces/operation.interfaces';
import type { AuthenticatedClient } from '../access/client.service';
import { Database } from '../storage/database';
import { afterPosition, MAX_ID } from '../storage/streams';
import { THROUGHPUT_SINCE } from '../storage/retention.service';

export interface QueueStats {
  /** Operations by status, and by target and status. */
  byStatus: Record<OperationStatus, number>;
  byTarget: { target: string; status: OperationStatus; count: number }[];
  /** Age in seconds of the oldest PENDING operation that is due (its notBefore passed), 0 when none. */
  oldestPendingAgeSeconds: number;
  /** Operations settled per minute over the last 15 minutes, oldest first. */
  throughput: { minute: string; completed: number; failed: number }[];
  /** Notifications written but not yet confirmed by the broker. */
  outboxBacklog: number;
}

/**
 * The age of the oldest due PENDING operation of all clients: the first one after each stream's position (one probe of the stream
 * index per stream, passing over cancelled ones), and the first due one by id of each target and priority in the
 * deferred set, found in its due index (target, priority, id) by a loose index scan over its (target, priority) pairs;
 * so the cost does not grow with a backlog (counting through the pending rows would). Ids are drawn in
 * order of creation.
 */
const OLDEST_PENDING_AGE = `
  WITH RECURSIVE pairs AS (
    (SELECT target, priority FROM batch.deferred WHERE due_at IS NULL ORDER BY target, priority DESC LIMIT 1)
    UNION ALL
    SELECT next.target, next.priority FROM pairs p
     CROSS JOIN LATERAL (
       (SELECT p.target, q.priority FROM batch.deferred q
         WHERE q.due_at IS NULL AND q.target = p.target AND q.priority < p.priority ORDER BY q.priority DESC LIMIT 1)
       UNION ALL
       (SELECT q.target, q.priority FROM batch.deferred q WHERE q.due_at IS NULL AND q.target > p.target ORDER BY q.target, q.priority DESC LIMIT 1)
       LIMIT 1) next),
  firsts AS (
    SELECT first.id FROM pairs p
     CROSS JOIN LATERAL (SELECT q.id FROM batch.deferred q
                          WHERE q.due_at IS NULL AND q.target = p.target AND q.priority = p.priority
                          ORDER BY q.priority DESC, q.id LIMIT 1) first
    UNION ALL
    SELECT first.id FROM batch.streams s
     CROSS JOIN LATERAL (SELECT o.id FROM batch.operations o
                          WHERE ${afterPosition('o', 's')} AND NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id)
                          ORDER BY o.target, o.priority, o.id LIMIT 1) first)
  SELECT coalesce(extract(epoch FROM now() - min(o.created_at)), 0)::float8 AS seconds
    FROM firsts f JOIN batch.operations o ON o.id = f.id`;

/**
 * The age of one client's ($1) oldest due PENDING operation, through its own indexes (by client and id), so that the
 * cost never grows with other clients' backlogs: its first operation after the slowest stream's position that is past
 * its own stream's and has no outcome, and its first due one in the deferred set.
 */
const OLDEST_OWN_PENDING_AGE = `
  SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS seconds FROM (
    (SELECT o.created_at FROM batch.operations o JOIN batch.streams s ON s.target = o.target AND s.priority = o.priority
      WHERE (o.client_id, o.id) > ($1, (SELECT coalesce(min(taken_through), 0) FROM batch.streams)) AND (o.client_id, o.id) <= ($1, ${MAX_ID})
        AND o.not_before IS NULL AND o.id > s.taken_through AND NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id)
      ORDER BY o.client_id, o.id LIMIT 1)
    UNION ALL
    (SELECT o.created_at FROM batch.deferred d JOIN batch.operations o ON o.id = d.id
      WHERE (d.client_id, d.id) >= ($1, 0) AND (d.client_id, d.id) <= ($1, ${MAX_ID}) AND d.due_at IS NULL
      ORDER BY d.client_id, d.id LIMIT 1)) firsts`;

/**
 * The queue at a glance, for /api/stats, the dashboard and the metrics. A client sees its own operations;
 * an admin (or the service itself, with no client) sees all. Counts and throughput come from the counts the
 * database keeps as operations change (batch.operation_counts), so their cost does not grow with the table.
 */
@Injectable()
export class StatsService {
  constructor(private readonly db: Database) {}

  async queue(client: AuthenticatedClient | null): Promise<QueueStats> {
    const owner = client && !client.admin ? client.id : null;
    const [byTarget, [age], throughput, [outbox]] = await Promise.all([
      this.db.query<{ target: string; status: OperationStatus; count: number }>(
        `SELECT target, status, sum(added - removed)::int AS count FROM batch.operation_counts
          WHERE ($1::bigint IS NULL OR client_id = $1) GROUP BY target, status HAVING sum(added - removed) <> 0 ORDER BY target, status`,
        [owner],
      ),
      owner === null
        ? this.db.query<{ seconds: number }>(OLDEST_PENDING_AGE)
        : this.db.query<{ seconds: number }>(OLDEST_OWN_PENDING_AGE, [owner]),
      this.db.query<{ minute: Date; completed: number; failed: number }>(
        `SELECT minute, coalesce(sum(added) FILTER (WHERE status = 'COMPLETED'), 0)::int AS completed,
                coalesce(sum(added) FILTER (WHERE status = 'FAILED'), 0)::int AS failed
           FROM batch.operation_counts
          WHERE status IN ('COMPLETED', 'FAILED') AND minute >= ${THROUGHPUT_SINCE} AND ($1::bigint IS NULL OR client_id = $1)
          GROUP BY minute HAVING sum(added) > 0 ORDER BY minute`,
        [owner],
      ),
      this.db.query<{ count: number }>(`SELECT count(*)::int AS count FROM batch.outbox WHERE sent_at IS NULL`),
    ]);
    const byStatus: Record<OperationStatus, number> = { PENDING: 0, COMPLETED: 0, FAILED: 0, CANCELLED: 0 };
    for (const row of byTarget) byStatus[row.status] += row.count;
    return {
      byStatus,
      byTarget,
      oldestPendingAgeSeconds: age.seconds,
      throughput: throughput.map((t) => ({ minute: t.minute.toISOString(), completed: t.completed, failed: t.failed })),
      outboxBacklog: owner === null ? outbox.count : 0,
    };
  }
}
