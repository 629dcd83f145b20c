-- Rounds (see batch.claim): what follows `after_id` in a stream, up to `max_operations`, as one row of arrays, a round and
-- shape each (ids listed in `lists`), with `allowed` saying whether they may be applied as rounds: of one client, through
-- one unique key with canonical values, one token each, no unique column changed, planned against `keys_version`,
-- inserts of one shape all in round 1, updates, increments and deletes but not deletes with inserts, and within
-- `byte_share` bytes. The k-th operations on the rows (row_number by token) are round k.
CREATE OR REPLACE FUNCTION batch.claim_rounds(stream_target text, stream_priority smallint, after_id bigint, horizon_id bigint, max_operations integer,
                                              keys_version text, byte_share bigint)
 RETURNS TABLE(ids bigint[], counts integer[], bytes bigint[], shapes text[], chars bigint[], lists text[], n integer, client_id bigint, allowed boolean)
 LANGUAGE sql
 STABLE
AS $$
  SELECT array_agg(r.first_id ORDER BY r.round, r.first_id) AS ids, array_agg(r.n ORDER BY r.round, r.first_id) AS counts,
         array_agg(r.bytes ORDER BY r.round, r.first_id) AS bytes, array_agg(r.shape ORDER BY r.round, r.first_id) AS shapes,
         array_agg(r.chars ORDER BY r.round, r.first_id) AS chars, array_agg(r.list ORDER BY r.round, r.first_id) AS lists,
         coalesce(sum(r.n), 0)::int AS n, min(r.client_id) AS client_id,
         min(r.client_id) = max(r.last_client_id) AND bool_and(r.one_token) AND max(r.barrier) = ''
           AND min(r.key) = max(r.last_key) AND min(r.key) LIKE 'k%' AND strpos(min(r.key), ' ') = 0
           AND bool_and(r.type IN ('insert', 'update', 'delete', 'increment') AND r.shape LIKE '%,"' || keys_version || '"]')
           AND NOT (bool_or(r.type = 'insert') AND bool_or(r.type = 'delete'))
           AND count(*) FILTER (WHERE r.type = 'insert') <= 1 AND bool_and(r.type <> 'insert' OR r.round = 1)
           AND coalesce(sum(r.bytes), 0) <= byte_share AS allowed
    FROM (SELECT w.round, w.shape, split_part(w.shape, '"', 2) AS type, min(w.id) AS first_id, count(*)::int AS n,
                 min(w.client_id) AS client_id, max(w.client_id) AS last_client_id, min(w.key) AS key, max(w.key) AS last_key,
                 sum(w.bytes) AS bytes, sum(w.chars) AS chars, array_agg(w.id ORDER BY w.id)::text AS list,
                 bool_and(w.token <> '' AND strpos(w.token, ' ') = 0) AS one_token, max(w.barrier) AS barrier
            FROM (SELECT a.*, row_number() OVER (PARTITION BY hashtext(a.token) ORDER BY a.id) AS round -- tokens hashed alike: later rounds
                    FROM (SELECT o.id, o.client_id, o.shape COLLATE "C" AS shape, coalesce(pg_column_size(o.row_values), 0) AS bytes,
                                 (coalesce(length(to_json(o.idempotency_key)::text), 4) + coalesce(length(to_json(o.label)::text), 4)) AS chars,
                                 split_part(o.identity, '|', 1) AS token,
                                 split_part(o.identity, '|', CASE WHEN o.type = 'insert' THEN 3 ELSE 2 END) AS key,
                                 split_part(o.identity, '|', 4) AS barrier
                            FROM batch.operations o
                           WHERE (o.target, o.priority, o.id) > (stream_target, stream_priority, after_id) AND (o.target, o.priority, o.id) <= (stream_target, stream_priority, horizon_id) AND o.not_before IS NULL
                           ORDER BY o.target, o.priority, o.id LIMIT max_operations) a) w
           GROUP BY w.round, w.shape) r
$$;
COMMENT ON FUNCTION batch.claim_rounds(text, smallint, bigint, bigint, integer, text, bigint) IS 'What follows a position in a stream as rounds (one row of arrays), and whether they may be applied as rounds. Called by batch.claim.';
