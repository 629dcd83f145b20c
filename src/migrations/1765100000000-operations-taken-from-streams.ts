import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The claim reads operations instead of deleting them from a pending set.
 *
 * Each target's operations of one priority are a stream, in order of id: the operations themselves, through the
 * partial index operations_stream (target, priority, id) of those not scheduled. batch.streams keeps, per stream, the
 * id up to which chunks have taken it (taken_through). A chunk reads the operations after it (a range of the index,
 * stopping at the chunk's limit) and moves it on when it records what it took, in the same transaction. So ingest
 * writes an operation and nothing else for it, and taking it writes nothing per operation: the pending set's insert,
 * its delete by the claim and their count triggers cost the database per operation, and the claim's walk with it
 * several times what reading those operations takes.
 *
 * What does not flow in order of id is set apart in batch.deferred (the pending set, renamed): operations scheduled
 * ahead (never in a stream), retried ones, and ones held back after their chunk failed as a whole; when those are set
 * apart their stream's position moves past them, so a stream never meets a deferred operation. A claim merges each
 * stream with its target's due deferred operations of that priority, in order of id.
 *
 * A cancelled operation keeps its place in its stream until the position passes it: the claim passes over operations
 * with a CANCELLED outcome, looking for them only in streams that have some (outcomes_cancelled_by_target).
 *
 * An operation is PENDING while it has no outcome (row or run); the PENDING counts are added where that changes
 * (ingest, retry, settlement, cancel) instead of by triggers on the pending set. Operations stored before stay in the
 * deferred set, which holds every pending one of them; each stream starts after the last operation stored.
 */
/**
 * The operations of a stream, by row comparisons (see below): after `after` and up to `upTo`, as conditions on `o`.
 * (The migration keeps its own text of it: a migration must make the same schema whatever the service's code becomes.)
 */
const inStream = (target: string, priority: string, after: string, upTo: string) =>
  `(o.target, o.priority, o.id) > (${target}, ${priority}, ${after}) AND (o.target, o.priority, o.id) <= (${target}, ${priority}, ${upTo}) ` +
  `AND o.not_before IS NULL`;

/** The length of an operation's idempotency key and label as JSON ('null' when absent): what its notification echoes. */
const echoed = (row: string) =>
  `(coalesce(length(to_json(${row}.idempotency_key)::text), 4) + coalesce(length(to_json(${row}.label)::text), 4))`;

export class OperationsTakenFromStreams1765100000000 implements MigrationInterface {
  name = 'OperationsTakenFromStreams1765100000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`ALTER TABLE batch.pending RENAME TO deferred`);
    await db.query(`ALTER INDEX batch.pending_pkey RENAME TO deferred_pkey`);
    await db.query(`ALTER INDEX batch.pending_due RENAME TO deferred_due`);
    await db.query(`ALTER INDEX batch.pending_scheduled RENAME TO deferred_scheduled`);
    for (const trigger of ['count_inserts', 'count_updates', 'count_deletes', 'count_truncates'])
      await db.query(`DROP TRIGGER ${trigger} ON batch.deferred`);
    await db.query(`DROP FUNCTION batch.count_pending_changes()`);

    await db.query(`
      CREATE TABLE batch.streams (
        target text NOT NULL,
        priority smallint NOT NULL,
        taken_through bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (target, priority)
      )`);
    await db.query(
      `INSERT INTO batch.streams (target, priority, taken_through) SELECT target, priority, max(id) FROM batch.operations GROUP BY 1, 2`,
    );
    await db.query(
      `CREATE INDEX operations_stream ON batch.operations (target, priority, id) WHERE not_before IS NULL`,
    );
    await db.query(
      `CREATE INDEX outcomes_cancelled_by_target ON batch.outcomes (target, operation_id) WHERE status = 'CANCELLED'`,
    );

    await db.query(`
      CREATE OR REPLACE VIEW batch.operation_states AS
      SELECT o.id, o.client_id, o.target, o.type, o.row_values, o.row_key, o.conflict_key, o.idempotency_key, o.request_key, o.label,
             o.priority, o.not_before, o.created_at,
             CASE WHEN oc.operation_id IS NOT NULL THEN oc.status WHEN r.execution_id IS NOT NULL THEN 'COMPLETED' ELSE 'PENDING' END AS status,
             coalesce(d.attempts, oc.attempts, CASE WHEN r.execution_id IS NOT NULL THEN 1 END, 0) AS attempts,
             coalesce(oc.rows_affected, CASE WHEN r.execution_id IS NOT NULL THEN 1 END) AS rows_affected,
             oc.error_code, oc.error_message, coalesce(oc.execution_id, r.execution_id) AS execution_id,
             coalesce(oc.settled_at, r.settled_at, o.created_at) AS updated_at, coalesce(oc.settled_at, r.settled_at) AS settled_at,
             o.request_ref, o.request_index
        FROM batch.operations o
        LEFT JOIN batch.deferred d ON d.id = o.id
        LEFT JOIN batch.outcomes oc ON oc.operation_id = o.id
        LEFT JOIN LATERAL (
          SELECT last.execution_id, last.settled_at
            FROM (SELECT * FROM batch.settled_runs r WHERE r.first_id <= o.id ORDER BY first_id DESC LIMIT 1) last
           WHERE last.last_id >= o.id) r ON true`);

    // A stream is a range of its index, bounded by row comparisons (inStream), (target, priority, id) > (its target, its
    // priority, its position): only that index serves them, where with the target and priority as equalities the planner may walk
    // the primary key in order of id instead, filtering its way to the stream (it guesses a target's share of the table
    // from the number of targets).
    //
    // The claim, target by target: each is locked before anything of it is read, so that every query reading it (a
    // statement of a VOLATILE function takes its own snapshot) sees what committed before the lock, such as a cancel.
    // Each target's streams with work, highest priority first, each merged with the target's due deferred operations of
    // its priority, in order of id, up to the target's cap and the chunk's limit. A stream with nothing deferred or
    // cancelled to merge gives its leading inserts and upserts as runs: operations of one client and shape with
    // consecutive ids, a row each (count, and bytes and chars together), which the chunk applies without planning them
    // one by one; what follows them, and every other stream, one operation a row. It returns each target's operations
    // in order of application, takes nothing (the chunk's record does), and only moves on a stream that holds nothing
    // to take up to the horizon but cancelled operations. It reads ranges of indexes that stop at its limit: a scan of
    // a table or of a whole index range is never the better plan, whatever the statistics say, and while a backlog is
    // being written they are stale (estimating a hundred rows where there are hundreds of thousands, the planner read
    // them all through a bitmap and sorted them).
    await db.query(`
      CREATE FUNCTION batch.claim(targets text[], caps int[], horizon bigint, max_operations int, target_lock_space int)
      RETURNS TABLE (id bigint, count int, client_id bigint, target_index int, priority smallint, attempts int, failures int,
                     bytes bigint, shape text, identity text, chars bigint, deferred boolean)
      LANGUAGE plpgsql SET enable_seqscan = off SET enable_bitmapscan = off AS $$
      DECLARE
        t int;
        stream record;
        cap int;
        left_operations int := max_operations;
        after bigint;
        in_runs int;
        one_by_one int;
        runs record;
      BEGIN
        FOR t IN 1 .. cardinality(targets) LOOP
          EXIT WHEN left_operations <= 0;
          CONTINUE WHEN NOT pg_try_advisory_xact_lock(target_lock_space, hashtext(targets[t]));
          cap := least(caps[t], left_operations);
          FOR stream IN
            SELECT s.priority, s.taken_through, w.stream, w.deferred,
                   EXISTS (SELECT FROM batch.outcomes x
                            WHERE x.status = 'CANCELLED' AND x.target = s.target AND x.operation_id > s.taken_through) AS cancelled
              FROM batch.streams s
             CROSS JOIN LATERAL (
               SELECT (SELECT o.id FROM batch.operations o
                        WHERE ${inStream('s.target', 's.priority', 's.taken_through', 'horizon')}
                        ORDER BY o.target, o.priority, o.id LIMIT 1) IS NOT NULL AS stream,
                      (SELECT d.id FROM batch.deferred d
                        WHERE d.due_at IS NULL AND d.target = s.target AND d.priority = s.priority AND d.id <= horizon
                        ORDER BY d.target, d.priority DESC, d.id LIMIT 1) IS NOT NULL AS deferred) w
             WHERE s.target = targets[t] AND (w.stream OR w.deferred)
             ORDER BY s.priority DESC
          LOOP
            EXIT WHEN cap <= 0;
            after := stream.taken_through;
            in_runs := 0;
            one_by_one := 0;
            IF NOT stream.deferred AND NOT stream.cancelled THEN
              SELECT array_agg(r.first_id ORDER BY r.first_id) AS ids, array_agg(r.n ORDER BY r.first_id) AS counts,
                     array_agg(r.client_id ORDER BY r.first_id) AS clients, array_agg(r.bytes ORDER BY r.first_id) AS bytes,
                     array_agg(r.shape ORDER BY r.first_id) AS shapes, array_agg(r.chars ORDER BY r.first_id) AS chars,
                     coalesce(sum(r.n), 0)::int AS n, max(r.last_id) AS last_id
                INTO runs
                FROM (SELECT min(w.id) AS first_id, max(w.id) AS last_id, count(*)::int AS n, w.client_id, w.shape,
                             sum(w.bytes) AS bytes, sum(w.chars) AS chars
                        FROM (SELECT w.*, w.id - row_number() OVER (PARTITION BY w.client_id, w.shape ORDER BY w.id) AS run
                                FROM (SELECT o.id, o.client_id, o.shape, coalesce(pg_column_size(o.row_values), 0) AS bytes,
                                             ${echoed('o')} AS chars,
                                             bool_and(o.type IN ('insert', 'upsert'))
                                               OVER (ORDER BY o.target, o.priority, o.id ROWS UNBOUNDED PRECEDING) AS leading
                                        FROM batch.operations o
                                       WHERE ${inStream('targets[t]', 'stream.priority', 'stream.taken_through', 'horizon')}
                                       ORDER BY o.target, o.priority, o.id LIMIT cap) w
                               WHERE w.leading) w
                       GROUP BY w.client_id, w.shape, w.run) r;
              IF runs.n > 0 THEN
                RETURN QUERY SELECT u.id, u.count, u.client_id, t, stream.priority, 0, 0, u.bytes, u.shape, NULL::text, u.chars, false
                               FROM unnest(runs.ids, runs.counts, runs.clients, runs.bytes, runs.shapes, runs.chars)
                                    AS u(id, count, client_id, bytes, shape, chars);
                in_runs := runs.n;
                after := runs.last_id;
              END IF;
            END IF;
            IF in_runs < cap THEN
              RETURN QUERY
                (SELECT o.id, 1, o.client_id, t, o.priority, 0, 0, coalesce(pg_column_size(o.row_values), 0)::bigint, o.shape,
                        o.identity, ${echoed('o')}::bigint,
                        false
                   FROM batch.operations o
                  WHERE stream.stream AND ${inStream('targets[t]', 'stream.priority', 'after', 'horizon')}
                    AND (NOT stream.cancelled OR NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id))
                  ORDER BY o.target, o.priority, o.id LIMIT cap - in_runs)
                UNION ALL
                (SELECT d.id, 1, d.client_id, t, d.priority, d.attempts, d.failures, d.bytes::bigint, d.shape, d.identity,
                        ${echoed('d')}::bigint,
                        true
                   FROM batch.deferred d
                  WHERE stream.deferred AND d.due_at IS NULL AND d.target = targets[t] AND d.priority = stream.priority AND d.id <= horizon
                  ORDER BY d.target, d.priority DESC, d.id LIMIT cap - in_runs)
                ORDER BY 1 LIMIT cap - in_runs;
              GET DIAGNOSTICS one_by_one = ROW_COUNT;
            END IF;
            IF in_runs + one_by_one = 0 THEN
              UPDATE batch.streams s SET taken_through = greatest(s.taken_through, horizon)
               WHERE s.target = targets[t] AND s.priority = stream.priority;
            END IF;
            cap := cap - in_runs - one_by_one;
            left_operations := left_operations - in_runs - one_by_one;
          END LOOP;
        END LOOP;
      END $$`);
  }

  async down(): Promise<void> {
    throw new Error('OperationsTakenFromStreams cannot be reverted: restore a backup taken before the upgrade');
  }
}
