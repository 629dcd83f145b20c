-- The text of an operations.settled notification, made when the relay sends it, from what the chunk wrote (the ids of
-- the client's operations as a multirange, the outcomes other than "completed, one row affected" as JSON fragments by
-- id) and the operations' own fields. A message cannot change before it is sent: retention makes an unsent message into
-- its text before the operations it reports go.
--
-- The operations come in order of id without being sorted again (sorting a chunk's megabytes of text took a large part
-- of the function's time): the ranges of the multirange in order, each read in order of id from the primary key, in a
-- nested loop, the only plan the settings leave.
CREATE OR REPLACE FUNCTION batch.settled_message(message batch.outbox)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
AS $$
  SELECT '{"type":"operations.settled","client":' || to_json(c.name)::text || ',"executionId":"' || e.id
      || '","settledAt":"' || to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '","operations":['
      || coalesce((
           SELECT string_agg('{"id":"' || o.id || '",'
                             || coalesce(message.exceptions ->> o.id::text, '"status":"COMPLETED","rowsAffected":1,"error":null')
                             || ',"target":' || to_json(o.target)::text || ',"type":"' || o.type || '","idempotencyKey":'
                             || coalesce(to_json(o.idempotency_key)::text, 'null') || ',"label":'
                             || coalesce(to_json(o.label)::text, 'null') || '}',
                             ',')
             FROM unnest(message.operations) AS r(ids)
             JOIN batch.operations o ON o.id >= lower(r.ids) AND o.id < upper(r.ids)), '')
      || ']}'
    FROM batch.clients c, batch.chunks e
   WHERE c.id = message.client_id AND e.id = message.chunk_id
$$;
COMMENT ON FUNCTION batch.settled_message(batch.outbox) IS 'The text of an operations.settled notification, made from what its chunk wrote: by the outbox relay as it sends it, and by retention before the operations it reports go.';
