-- Each operation as callers see it (getOperation, listings, psql): its outcome row when it has one; else COMPLETED by
-- the run of batch.settled_runs that holds its id (the one with the greatest first id not after it), one row affected
-- or none where the run's bitmap marks it; else PENDING.
DROP VIEW IF EXISTS batch.operation_states;
CREATE VIEW batch.operation_states AS
SELECT o.id, o.client_id, o.target, o.type, o.row_values, o.row_key, o.conflict_key, o.idempotency_key, o.request_key, o.label,
       o.priority, o.not_before, o.created_at,
       CASE WHEN oc.operation_id IS NOT NULL THEN oc.status WHEN r.chunk_id IS NOT NULL THEN 'COMPLETED' ELSE 'PENDING' END AS status,
       coalesce(d.attempts, oc.attempts, CASE WHEN r.chunk_id IS NOT NULL THEN 1 END, 0) AS attempts,
       coalesce(oc.rows_affected, CASE WHEN r.chunk_id IS NOT NULL THEN 1 - coalesce(get_bit(r.no_rows, (o.id - r.first_id)::int), 0) END) AS rows_affected,
       oc.error_code, oc.error_message, coalesce(oc.chunk_id, r.chunk_id) AS chunk_id,
       coalesce(oc.settled_at, r.settled_at, o.created_at) AS updated_at, coalesce(oc.settled_at, r.settled_at) AS settled_at,
       o.request_ref, o.request_index
  FROM batch.operations o
  LEFT JOIN batch.deferred d ON d.id = o.id
  LEFT JOIN batch.outcomes oc ON oc.operation_id = o.id
  LEFT JOIN LATERAL (
    SELECT last.chunk_id, last.settled_at, last.first_id, last.no_rows
      FROM (SELECT * FROM batch.settled_runs r WHERE r.first_id <= o.id ORDER BY first_id DESC LIMIT 1) last
     WHERE last.last_id >= o.id) r ON true;
COMMENT ON VIEW batch.operation_states IS 'Each operation as callers see it: PENDING, else its outcome, else COMPLETED by the run that holds its id. Read by the API''s operation reads, a request delivered again, and psql.';
