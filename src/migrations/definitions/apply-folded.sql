-- Rounds of updates and increments applied as one change of each row (the writer's folded statement, returning
-- `folded`), its rows found by one lookup of the key's index each (see batch.through_key_index). True when it applied;
-- else, where it refused (false) or failed with an error of the data, it is undone and false tells the writer to run the
-- rounds' own statements, which settle each operation as it would be one at a time. Its operations are grouped by key
-- sorted, not hashed: a hashed group keeps a memory context for each key's arrays, and thousands of them spill to disk. An error matching `chunk_failure`
-- (a conflict with other work, a lost connection, a limit of the server) is raised again: it fails the chunk as a whole.
CREATE OR REPLACE FUNCTION batch.apply_folded(statement text, first_ids bigint[], last_ids bigint[], rounds integer[], chunk_failure text)
 RETURNS boolean
 LANGUAGE plpgsql
 SET enable_mergejoin TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_seqscan TO 'off'
 SET enable_hashagg TO 'off'
AS $$
  DECLARE
    folded boolean;
    code text;
  BEGIN
    EXECUTE statement USING first_ids, last_ids, rounds INTO folded;
    IF folded THEN
      RETURN true;
    END IF;
    RAISE SQLSTATE 'BS001'; -- undoes it
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE;
    IF code ~ chunk_failure THEN
      RAISE;
    END IF;
    RETURN false;
  END
$$;
