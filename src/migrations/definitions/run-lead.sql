-- A stream's lead as one run, read from the runs stored with its operations (batch.stream_runs) instead of from each
-- operation: its operations after `after`, up to the horizon and `max_operations`, where they are all of one client and
-- shape with consecutive ids (inserts or upserts: runs are made of nothing else). The first run must hold the stream's
-- next operation, each next run must follow the last at the next id and have its last operation taken stored, and the
-- lead must be whole: as many as it may take, or all that the stream holds up to the horizon. Otherwise, or where the
-- stream holds something no run records, no row: the claim reads its operations. Of a run taken in part, bytes and
-- chars are its share by count.
CREATE OR REPLACE FUNCTION batch.run_lead(target text, priority smallint, after bigint, horizon bigint, max_operations integer)
 RETURNS TABLE(first_id bigint, last_id bigint, client_id bigint, shape text, bytes bigint, chars bigint)
 LANGUAGE plpgsql
 STABLE
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
AS $$
  DECLARE
    run record;
    upto bigint;
    taken bigint := after;
    part bigint;
  BEGIN
    FOR run IN
      SELECT r.first_id, r.last_id, r.client_id, r.shape COLLATE "C" AS shape, r.bytes, r.chars FROM batch.stream_runs r
       WHERE (r.target, r.priority, r.last_id) > (run_lead.target, run_lead.priority, after)
         AND (r.target, r.priority, r.last_id) <= (run_lead.target, run_lead.priority, 9223372036854775807)
       ORDER BY r.target, r.priority, r.last_id
    LOOP
      IF taken = after THEN
        first_id := (SELECT o.id FROM batch.operations o
                      WHERE (o.target, o.priority, o.id) > (run_lead.target, run_lead.priority, after)
                        AND (o.target, o.priority, o.id) <= (run_lead.target, run_lead.priority, horizon) AND o.not_before IS NULL
                      ORDER BY o.target, o.priority, o.id LIMIT 1);
        EXIT WHEN first_id IS NULL OR first_id NOT BETWEEN run.first_id AND run.last_id;
        client_id := run.client_id;
        shape := run.shape;
        bytes := 0;
        chars := 0;
        upto := least(horizon, first_id + max_operations - 1);
      ELSE
        EXIT WHEN run.first_id <> taken + 1 OR run.client_id <> client_id OR run.shape <> shape;
      END IF;
      part := least(run.last_id, upto) - greatest(run.first_id, taken + 1) + 1;
      bytes := bytes + run.bytes * part / (run.last_id - run.first_id + 1);
      chars := chars + run.chars * part / (run.last_id - run.first_id + 1);
      taken := least(run.last_id, upto);
      -- a run's operations stay while it lasts (a cancel ends it); its last one taken is looked up all the same, so
      -- that runs whose operations went another way (deleted by hand) give no lead
      IF NOT EXISTS (SELECT FROM batch.operations o WHERE o.id = taken) THEN
        RETURN;
      END IF;
      EXIT WHEN taken = upto;
    END LOOP;
    IF taken = after OR (taken < upto AND EXISTS (
         SELECT FROM batch.operations o
          WHERE (o.target, o.priority, o.id) > (run_lead.target, run_lead.priority, taken)
            AND (o.target, o.priority, o.id) <= (run_lead.target, run_lead.priority, horizon) AND o.not_before IS NULL)) THEN
      RETURN;
    END IF;
    last_id := taken;
    RETURN NEXT;
  END
$$;

COMMENT ON FUNCTION batch.run_lead(text, smallint, bigint, bigint, integer) IS 'A stream''s lead as one run, read from the runs stored with its operations; no row where it is not one whole run. Called by the claim.';
