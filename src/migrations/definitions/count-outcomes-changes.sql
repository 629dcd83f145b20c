-- The counts of operations by client, target, status and minute (batch.operation_counts), kept by the statement-level
-- triggers of batch.outcomes as its rows change, whatever changes them; insert-only, so that concurrent writers never
-- wait for one another on them. PENDING and completions in runs are counted by the statements that change them.
CREATE OR REPLACE FUNCTION batch.count_outcomes_changes()
 RETURNS trigger
 LANGUAGE plpgsql
AS $$
  BEGIN
    IF TG_OP = 'TRUNCATE' THEN
      DELETE FROM batch.operation_counts WHERE (status = 'PENDING') = false;
    ELSIF TG_OP = 'INSERT' THEN
      INSERT INTO batch.operation_counts
      SELECT client_id, target, status, date_trunc('minute', now()), count(*), 0 FROM new_rows GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
      INSERT INTO batch.operation_counts
      SELECT client_id, target, status, date_trunc('minute', now()), 0, count(*) FROM old_rows GROUP BY 1, 2, 3;
    ELSE
      INSERT INTO batch.operation_counts
      SELECT client_id, target, status, date_trunc('minute', now()), greatest(sum(n), 0), greatest(-sum(n), 0)
        FROM (SELECT client_id, target, status AS status, 1 AS n FROM new_rows
              UNION ALL SELECT client_id, target, status, -1 FROM old_rows) change
       GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
  END
$$;
COMMENT ON FUNCTION batch.count_outcomes_changes() IS 'Trigger function of batch.outcomes'' count_* triggers: adds each statement''s changes of its rows to batch.operation_counts.';
