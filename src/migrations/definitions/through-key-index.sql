-- A statement that finds its rows of a target through a unique key (the writer's UPDATE … FROM or DELETE … USING over
-- the operations' typed rows, returning one row of ids), run with nested loops only: each of its rows one lookup of
-- the key's index. Left to choose, the planner joins a statement's thousands of rows with a merge join, which reads
-- the index from its start up to the highest key, or with a hash join, which reads the whole table: either costs
-- more the larger the table grows, however few rows the statement changes. (Processes of an earlier build call this
-- form while a deploy replaces them; the service itself calls the one below.)
CREATE OR REPLACE FUNCTION batch.through_key_index(statement text, first_ids bigint[], last_ids bigint[])
 RETURNS bigint[]
 LANGUAGE plpgsql
 SET enable_mergejoin TO 'off'
 SET enable_hashjoin TO 'off'
AS $$
  DECLARE
    ops bigint[];
  BEGIN
    EXECUTE statement USING first_ids, last_ids INTO ops;
    RETURN ops;
  END
$$;

-- The same, for a statement given twice: `change`, the bare UPDATE or DELETE over the typed rows, and `exact`, the
-- statement that also tells which operations changed a row (above). Within a statement keys are distinct and each names
-- one row at most, so where `change` changed as many rows as the runs hold operations, each operation changed its row,
-- and every value was cast on the way: NULL, as `exact` would say. Else what it did is undone and `exact` runs. `change`
-- does without what `exact` pays for every operation (the typed rows kept to be counted, an id returned per row).
-- `change` NULL runs `exact` alone: the writer's choice where its last statement of the kind missed rows, since a
-- change undone and run again costs more than `exact` at once.
-- Not kept apart, its typed rows are planned from an estimate (a range of ids per run, costed as a ninth of the queue):
-- no sequential scan, so that the queue is read by its index, a run at a time, and the rows found by their key.
CREATE OR REPLACE FUNCTION batch.through_key_index(change text, exact text, first_ids bigint[], last_ids bigint[])
 RETURNS bigint[]
 LANGUAGE plpgsql
 SET enable_mergejoin TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_seqscan TO 'off'
AS $$
  DECLARE
    changed bigint;
    ops bigint[];
  BEGIN
    IF change IS NOT NULL THEN
      BEGIN
        EXECUTE change USING first_ids, last_ids;
        GET DIAGNOSTICS changed = ROW_COUNT;
        IF changed = (SELECT sum(r.last_id - r.first_id + 1) FROM unnest(first_ids, last_ids) AS r(first_id, last_id)) THEN
          RETURN NULL;
        END IF;
        RAISE SQLSTATE 'BS001'; -- undoes it
      EXCEPTION WHEN SQLSTATE 'BS001' THEN
        NULL;
      END;
    END IF;
    EXECUTE exact USING first_ids, last_ids INTO ops;
    RETURN ops;
  END
$$;
COMMENT ON FUNCTION batch.through_key_index(text, bigint[], bigint[]) IS 'Runs a statement of a chunk through a unique key''s index (nested loops only), as processes of an earlier build call it while a deploy replaces them.';
COMMENT ON FUNCTION batch.through_key_index(text, text, bigint[], bigint[]) IS 'Runs a chunk''s update or delete through a unique key''s index (nested loops only): the bare change (unless NULL), and the statement that tells which operations changed a row only where the count says it must. Called by the chunk writer.';
