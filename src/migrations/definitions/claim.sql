-- The claim of a chunk, target by target: each is locked before anything of it is read, so that every query reading
-- it (a statement of a VOLATILE function takes its own snapshot) sees what committed before the lock, such as a cancel.
-- Each target's streams with work, highest priority first, each merged with the target's due deferred operations of its
-- priority, in order of id, up to the target's cap and the chunk's limit. A stream with nothing deferred or cancelled to
-- merge gives its leading operations as runs: operations of one client and shape with consecutive ids, a row each
-- (count, and bytes and chars together), which the chunk applies without planning them one by one. Leading are its
-- first inserts and upserts, or its first updates, deletes and increments as long as each addresses another row through
-- the same unique key (a statement must not meet a row twice: where an insert would fail, an update would not). What
-- follows them comes as rounds where it can (below), else, as every other stream, one operation a row. It returns each
-- target's operations in order of application (rounds in order of round), takes nothing (the chunk's record does), and
-- only moves on a stream that holds nothing to take up to the horizon but cancelled operations. A stream is a range of
-- its index, bounded by row comparisons, (target, priority, id) > (its target, its priority, its position): only that
-- index serves them. It reads ranges of indexes that stop at its limit:
-- a scan of a table or of a whole index range is never the better plan, whatever the statistics say, and while a backlog
-- is being written they are stale.
--
-- Rounds (batch.claim_rounds) where the worker names the target's keys version (keys_versions, else NULL: never), the
-- stream has nothing to merge, and what is taken fits in the target's share of the chunk's bytes (byte_share): from the
-- stream's start where its kinds change within its first operations (a lead cut short would be statements of its own),
-- else after its lead. Operations of one round address pairwise different rows and commute, a row's operations are in
-- rounds in their order, and the inserts, all in round 1, keep their order in one statement; so the rounds' statements,
-- in order of round, give what the operations one at a time would, without the worker planning each operation.
CREATE OR REPLACE FUNCTION batch.claim(targets text[], caps integer[], horizon bigint, max_operations integer, target_lock_space integer,
                                       keys_versions text[], byte_share bigint)
 RETURNS TABLE(id bigint, count integer, client_id bigint, target_index integer, priority smallint, attempts integer, failures integer, bytes bigint, shape text, identity text, chars bigint, deferred boolean, ids text)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
AS $$
  DECLARE
    t int;
    stream record;
    cap int;
    left_operations int := max_operations;
    after bigint;
    in_runs int;
    one_by_one int;
    runs record;
    lead_n int;
    keyed_lead boolean;
    lead record;
    run_found boolean;
    rounds record;
    rounds_possible boolean;
    rounds_tried boolean;
    rounds_allowed boolean;
    target_bytes bigint; -- of what the target gave so far, where known (NULL once operations came one a row)
  BEGIN
    FOR t IN 1 .. cardinality(targets) LOOP
      EXIT WHEN left_operations <= 0;
      CONTINUE WHEN NOT pg_try_advisory_xact_lock(target_lock_space, hashtext(targets[t]));
      -- a chunk prepared for another database holds its targets until it is settled; the worker may have read the
      -- targets before that chunk's prepare committed, this sees it
      CONTINUE WHEN EXISTS (SELECT FROM batch.prepared_chunks p WHERE claim.targets[t] = ANY (p.targets));
      cap := least(caps[t], left_operations);
      target_bytes := 0;
      FOR stream IN
        SELECT s.priority, s.taken_through, w.stream, w.types, w.deferred,
               EXISTS (SELECT FROM batch.outcomes x
                        WHERE x.status = 'CANCELLED' AND x.target = s.target AND x.operation_id > s.taken_through) AS cancelled
          FROM batch.streams s
         CROSS JOIN LATERAL (
           SELECT head.types IS NOT NULL AS stream, head.types,
                  (SELECT d.id FROM batch.deferred d
                    WHERE d.due_at IS NULL AND d.target = s.target AND d.priority = s.priority AND d.id <= horizon
                    ORDER BY d.target, d.priority DESC, d.id LIMIT 1) IS NOT NULL AS deferred
             FROM (SELECT (SELECT array_agg(f.type) FROM (
                              SELECT o.type FROM batch.operations o
                               WHERE (o.target, o.priority, o.id) > (s.target, s.priority, s.taken_through) AND (o.target, o.priority, o.id) <= (s.target, s.priority, horizon) AND o.not_before IS NULL
                               ORDER BY o.target, o.priority, o.id LIMIT 64) f) AS types) head) w
         WHERE s.target = targets[t] AND (w.stream OR w.deferred)
         ORDER BY s.priority DESC
      LOOP
        EXIT WHEN cap <= 0;
        after := stream.taken_through;
        in_runs := 0;
        one_by_one := 0;
        rounds_allowed := false;
        -- Where the stream's first operations change from inserts and upserts to the other types or back, what leads
        -- it ends (so that a stream of a few of each does not read a whole chunk's worth to find its runs).
        SELECT coalesce(min(u.k) - 1, cap) INTO lead_n
          FROM unnest(stream.types) WITH ORDINALITY AS u(type, k)
         WHERE (u.type IN ('insert', 'upsert')) <> (stream.types[1] IN ('insert', 'upsert'));
        lead_n := least(lead_n, cap);
        keyed_lead := coalesce(NOT stream.deferred AND NOT stream.cancelled AND stream.types[1] NOT IN ('insert', 'upsert'), false);
        -- Rounds from the start where the kinds change within the first operations, or where what leads is not one run;
        -- where they may not be had, the lead and what follows it as below (rounds again after a lead).
        rounds_possible := NOT stream.deferred AND NOT stream.cancelled AND keys_versions[t] IS NOT NULL AND target_bytes IS NOT NULL;
        rounds_tried := rounds_possible AND lead_n < cap;
        IF rounds_tried THEN
          SELECT * INTO rounds
            FROM batch.claim_rounds(targets[t], stream.priority, after, horizon, cap, keys_versions[t], byte_share - target_bytes);
          rounds_allowed := coalesce(rounds.allowed, false);
        END IF;
        IF NOT rounds_allowed AND NOT stream.deferred AND NOT stream.cancelled AND lead_n > 0 THEN
          -- The usual lead of a backlog, told in one pass: one run (one client and shape, consecutive ids) of operations
          -- that all lead (see above), the key-addressed ones through one key, each row once. Else the passes below.
          -- Key-addressed identities alike after their token (|kN||: one token, through unique key N, no barrier) name
          -- one row each where they differ, which a 64-bit hash of each tells without sorting the texts (a collision
          -- only sends the lead to the passes below). Rows are counted for a keyed lead alone: the count sorts what
          -- it is given, NULLs too, a quarter of an insert lead's time. A lead of inserts or upserts is read from the
          -- runs stored with them where it is one (batch.run_lead), without reading its operations.
          run_found := false;
          IF NOT keyed_lead THEN
            SELECT (r.last_id - r.first_id + 1)::int AS n, r.first_id, r.last_id, r.client_id, r.client_id AS last_client_id,
                   r.shape, r.shape AS last_shape, r.bytes, r.chars, true AS leads, NULL::bigint AS rows, NULL::text AS addressing,
                   NULL::text AS last_addressing
              INTO lead
              FROM batch.run_lead(targets[t], stream.priority, stream.taken_through, horizon, lead_n) r;
            run_found := FOUND;
          END IF;
          IF NOT run_found THEN
            SELECT count(*)::int AS n, min(a.id) AS first_id, max(a.id) AS last_id, min(a.client_id) AS client_id,
                   max(a.client_id) AS last_client_id, min(a.shape) AS shape, max(a.shape) AS last_shape,
                   sum(a.bytes) AS bytes, sum(a.chars) AS chars, bool_and(a.leads) AS leads,
                   count(DISTINCT a.row_hash) FILTER (WHERE keyed_lead) AS rows, min(a.addressing) AS addressing, max(a.addressing) AS last_addressing
              INTO lead
              FROM (SELECT o.id, o.client_id, o.shape COLLATE "C" AS shape, coalesce(pg_column_size(o.row_values), 0) AS bytes,
                           (coalesce(length(to_json(o.idempotency_key)::text), 4) + coalesce(length(to_json(o.label)::text), 4)) AS chars,
                           CASE WHEN keyed_lead THEN o.type IN ('update', 'delete', 'increment')
                                ELSE o.type IN ('insert', 'upsert') END AS leads,
                           CASE WHEN keyed_lead THEN hashtextextended(o.identity, 0) END AS row_hash,
                           CASE WHEN keyed_lead THEN substr(o.identity, strpos(o.identity, '|')) COLLATE "C" END AS addressing
                      FROM batch.operations o
                     WHERE (o.target, o.priority, o.id) > (targets[t], stream.priority, stream.taken_through) AND (o.target, o.priority, o.id) <= (targets[t], stream.priority, horizon) AND o.not_before IS NULL
                     ORDER BY o.target, o.priority, o.id LIMIT lead_n) a;
          END IF;
          IF lead.leads AND lead.last_id - lead.first_id + 1 = lead.n AND lead.client_id = lead.last_client_id
             AND lead.shape = lead.last_shape
             AND (NOT keyed_lead OR (lead.rows = lead.n AND lead.addressing = lead.last_addressing
                                     AND lead.addressing ~ '^\|k[0-9]+\|\|$')) THEN
            RETURN QUERY SELECT lead.first_id, lead.n, lead.client_id, t, stream.priority, 0, 0, lead.bytes::bigint,
                                lead.shape::text, NULL::text, lead.chars::bigint, false, NULL::text;
            in_runs := lead.n;
            target_bytes := target_bytes + lead.bytes;
            after := lead.last_id;
          ELSE
            IF rounds_possible AND NOT rounds_tried THEN
              rounds_tried := true;
              SELECT * INTO rounds
                FROM batch.claim_rounds(targets[t], stream.priority, after, horizon, cap, keys_versions[t], byte_share - target_bytes);
              rounds_allowed := coalesce(rounds.allowed, false);
            END IF;
            IF NOT rounds_allowed THEN
              IF keyed_lead THEN
                -- Key-addressed operations lead: as many as address pairwise different rows through one unique key, with
                -- canonical key values (the identity's key kN) and no unique column changed (no barrier b).
                SELECT count(*) INTO lead_n
                  FROM (SELECT bool_and(coalesce(w.keyed AND w.key = w.first_key AND w.nth = 1, false))
                                 OVER (ORDER BY w.id ROWS UNBOUNDED PRECEDING) AS leading
                          FROM (SELECT a.*, first_value(a.key) OVER (ORDER BY a.id) AS first_key,
                                       row_number() OVER (PARTITION BY a.token ORDER BY a.id) AS nth
                                  FROM (SELECT o.id, split_part(o.identity, '|', 1) COLLATE "C" AS token, split_part(o.identity, '|', 2) AS key,
                                               o.type IN ('update', 'delete', 'increment') AND split_part(o.identity, '|', 2) LIKE 'k%'
                                                 AND split_part(o.identity, '|', 4) = '' AS keyed
                                          FROM batch.operations o
                                         WHERE (o.target, o.priority, o.id) > (targets[t], stream.priority, stream.taken_through) AND (o.target, o.priority, o.id) <= (targets[t], stream.priority, horizon) AND o.not_before IS NULL
                                         ORDER BY o.target, o.priority, o.id LIMIT lead_n) a) w) l
                 WHERE l.leading;
              END IF;
              SELECT array_agg(r.first_id ORDER BY r.first_id) AS ids, array_agg(r.n ORDER BY r.first_id) AS counts,
                     array_agg(r.client_id ORDER BY r.first_id) AS clients, array_agg(r.bytes ORDER BY r.first_id) AS bytes,
                     array_agg(r.shape ORDER BY r.first_id) AS shapes, array_agg(r.chars ORDER BY r.first_id) AS chars,
                     coalesce(sum(r.n), 0)::int AS n, max(r.last_id) AS last_id
                INTO runs
                FROM (SELECT min(w.id) AS first_id, max(w.id) AS last_id, count(*)::int AS n, w.client_id, w.shape,
                             sum(w.bytes) AS bytes, sum(w.chars) AS chars
                        FROM (SELECT w.*, w.id - row_number() OVER (PARTITION BY w.client_id, w.shape ORDER BY w.id) AS run
                                FROM (SELECT o.id, o.client_id, o.shape COLLATE "C" AS shape, coalesce(pg_column_size(o.row_values), 0) AS bytes,
                                             (coalesce(length(to_json(o.idempotency_key)::text), 4) + coalesce(length(to_json(o.label)::text), 4)) AS chars,
                                             bool_and(keyed_lead OR o.type IN ('insert', 'upsert'))
                                               OVER (ORDER BY o.target, o.priority, o.id ROWS UNBOUNDED PRECEDING) AS leading
                                        FROM batch.operations o
                                       WHERE (o.target, o.priority, o.id) > (targets[t], stream.priority, stream.taken_through) AND (o.target, o.priority, o.id) <= (targets[t], stream.priority, horizon) AND o.not_before IS NULL
                                       ORDER BY o.target, o.priority, o.id LIMIT lead_n) w
                               WHERE w.leading) w
                       GROUP BY w.client_id, w.shape, w.run) r;
              IF runs.n > 0 THEN
                RETURN QUERY SELECT u.id, u.count, u.client_id, t, stream.priority, 0, 0, u.bytes, u.shape::text, NULL::text, u.chars, false, NULL::text
                               FROM unnest(runs.ids, runs.counts, runs.clients, runs.bytes, runs.shapes, runs.chars)
                                    AS u(id, count, client_id, bytes, shape, chars);
                in_runs := runs.n;
                target_bytes := target_bytes + (SELECT sum(b) FROM unnest(runs.bytes) AS b);
                after := runs.last_id;
              END IF;
            END IF;
          END IF;
        END IF;
        IF rounds_possible AND NOT rounds_allowed AND (NOT rounds_tried OR in_runs > 0) AND in_runs < cap THEN
          SELECT * INTO rounds
            FROM batch.claim_rounds(targets[t], stream.priority, after, horizon, cap - in_runs, keys_versions[t], byte_share - target_bytes);
          rounds_allowed := coalesce(rounds.allowed, false);
        END IF;
        IF rounds_allowed THEN
          RETURN QUERY SELECT u.id, u.count, rounds.client_id, t, stream.priority, 0, 0, u.bytes, u.shape::text, NULL::text, u.chars, false, u.list
                         FROM unnest(rounds.ids, rounds.counts, rounds.bytes, rounds.shapes, rounds.chars, rounds.lists)
                              AS u(id, count, bytes, shape, chars, list);
          one_by_one := rounds.n;
          target_bytes := target_bytes + (SELECT sum(b) FROM unnest(rounds.bytes) AS b);
        ELSIF in_runs < cap AND NOT stream.deferred THEN
          -- Nothing to merge: the stream in its index's order, not sorted again.
          RETURN QUERY
            SELECT o.id, 1, o.client_id, t, o.priority, 0, 0, coalesce(pg_column_size(o.row_values), 0)::bigint, o.shape,
                   o.identity, (coalesce(length(to_json(o.idempotency_key)::text), 4) + coalesce(length(to_json(o.label)::text), 4))::bigint,
                   false, NULL::text
              FROM batch.operations o
             WHERE (o.target, o.priority, o.id) > (targets[t], stream.priority, after) AND (o.target, o.priority, o.id) <= (targets[t], stream.priority, horizon) AND o.not_before IS NULL
               AND (NOT stream.cancelled OR NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id))
             ORDER BY o.target, o.priority, o.id LIMIT cap - in_runs;
          GET DIAGNOSTICS one_by_one = ROW_COUNT;
          target_bytes := NULL;
        ELSIF in_runs < cap THEN
          RETURN QUERY
            (SELECT o.id, 1, o.client_id, t, o.priority, 0, 0, coalesce(pg_column_size(o.row_values), 0)::bigint, o.shape,
                    o.identity, (coalesce(length(to_json(o.idempotency_key)::text), 4) + coalesce(length(to_json(o.label)::text), 4))::bigint,
                    false, NULL::text
               FROM batch.operations o
              WHERE stream.stream AND (o.target, o.priority, o.id) > (targets[t], stream.priority, after) AND (o.target, o.priority, o.id) <= (targets[t], stream.priority, horizon) AND o.not_before IS NULL
                AND (NOT stream.cancelled OR NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id))
              ORDER BY o.target, o.priority, o.id LIMIT cap - in_runs)
            UNION ALL
            (SELECT d.id, 1, d.client_id, t, d.priority, d.attempts, d.failures, d.bytes::bigint, d.shape, d.identity,
                    (coalesce(length(to_json(d.idempotency_key)::text), 4) + coalesce(length(to_json(d.label)::text), 4))::bigint,
                    true, NULL::text
               FROM batch.deferred d
              WHERE stream.deferred AND d.due_at IS NULL AND d.target = targets[t] AND d.priority = stream.priority AND d.id <= horizon
              ORDER BY d.target, d.priority DESC, d.id LIMIT cap - in_runs)
            ORDER BY 1 LIMIT cap - in_runs;
          GET DIAGNOSTICS one_by_one = ROW_COUNT;
          target_bytes := NULL;
        END IF;
        IF in_runs + one_by_one = 0 THEN
          UPDATE batch.streams s SET taken_through = greatest(s.taken_through, horizon)
           WHERE s.target = targets[t] AND s.priority = stream.priority;
        END IF;
        cap := cap - in_runs - one_by_one;
        left_operations := left_operations - in_runs - one_by_one;
      END LOOP;
    END LOOP;
  END
$$;

-- The claim as processes of an earlier build call it while a deploy replaces them: without rounds.
CREATE OR REPLACE FUNCTION batch.claim(targets text[], caps integer[], horizon bigint, max_operations integer, target_lock_space integer)
 RETURNS TABLE(id bigint, count integer, client_id bigint, target_index integer, priority smallint, attempts integer, failures integer, bytes bigint, shape text, identity text, chars bigint, deferred boolean)
 LANGUAGE sql
AS $$
  SELECT c.id, c.count, c.client_id, c.target_index, c.priority, c.attempts, c.failures, c.bytes, c.shape, c.identity, c.chars, c.deferred
    FROM batch.claim(targets, caps, horizon, max_operations, target_lock_space, NULL, NULL) AS c
$$;

COMMENT ON FUNCTION batch.claim(text[], integer[], bigint, integer, integer, text[], bigint) IS 'The claim of a chunk: the due operations of its targets, target by target, in order of application, as runs, rounds or one by one; takes nothing (the chunk''s record does). Called by the chunk reader.';
COMMENT ON FUNCTION batch.claim(text[], integer[], bigint, integer, integer) IS 'The claim without rounds, as processes of an earlier build call it while a deploy replaces them.';
