-- What the database gives of an operations.settled notification to make its text (settledText): the client's name, the
-- chunk and when it ended, and the operations its runs do not say all of: each one with an idempotency key or a label,
-- or whose target or type is not the one its run names (none, but for a run whose type was not known). The runs are
-- read in order, each a range of the primary key in a nested loop, the only plan the settings leave. A message cannot
-- change before it is sent: retention makes an unsent message into its text before the operations it reports go.
CREATE OR REPLACE FUNCTION batch.settled_parts(message batch.outbox)
 RETURNS json
 LANGUAGE sql
 STABLE
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
AS $$
  SELECT json_build_object(
           'client', c.name,
           'executionId', e.id::text,
           'settledAt', to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'operations', coalesce((
             SELECT json_agg(json_build_array(o.id::text, o.target, o.type, o.idempotency_key, o.label))
               FROM jsonb_array_elements(message.runs) AS r(run)
               JOIN batch.operations o ON o.id BETWEEN (r.run->>0)::bigint AND (r.run->>1)::bigint
              WHERE o.idempotency_key IS NOT NULL OR o.label IS NOT NULL
                 OR o.target IS DISTINCT FROM r.run->>2 OR o.type IS DISTINCT FROM r.run->>3), '[]'))
    FROM batch.clients c, batch.chunks e
   WHERE c.id = message.client_id AND e.id = message.chunk_id
$$;
COMMENT ON FUNCTION batch.settled_parts(batch.outbox) IS 'What an operations.settled notification''s text is made of besides its runs: the client''s name, the chunk and when it ended, and the operations with an idempotency key or a label. Read by the outbox relay as it sends the message, and by retention before the operations it reports go.';
