-- Rounds of updates and increments applied as one change of each row (the writer's folded statement, returning
-- `folded` and `missed`), its rows found by one lookup of the key's index each (see batch.through_key_index). It reads
-- its operations by ranges of ids, `first_ids` to `last_ids`, and `rounds` holds the round of each id of the ranges in
-- order, 0 for an id that is not one of its operations (taggedSpans). Where it applied: true, and the operations whose
-- row was missing (NULL: none). Else, where it refused or failed with an error of the data, it is undone, and false
-- tells the writer to run the rounds' own statements, which settle each operation as it would be one at a time. Its
-- operations are grouped by key sorted, not hashed: a hashed group keeps a memory context for each key's arrays, and
-- thousands of them spill to disk. An error matching `chunk_failure` (a conflict with other work, a lost connection, a
-- limit of the server) is raised again: it fails the chunk as a whole.
CREATE OR REPLACE FUNCTION batch.apply_folded(statement text, first_ids bigint[], last_ids bigint[], rounds integer[], chunk_failure text)
 RETURNS TABLE(folded boolean, missed bigint[])
 LANGUAGE plpgsql
 SET enable_mergejoin TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_seqscan TO 'off'
 SET enable_hashagg TO 'off'
AS $$
  DECLARE
    code text;
  BEGIN
    BEGIN
      EXECUTE statement USING first_ids, last_ids, rounds INTO folded, missed;
      IF NOT folded THEN
        RAISE SQLSTATE 'BS001'; -- undoes it
      END IF;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE;
      IF code ~ chunk_failure THEN
        RAISE;
      END IF;
      folded := false;
      missed := NULL;
    END;
    RETURN NEXT;
  END
$$;
COMMENT ON FUNCTION batch.apply_folded(text, bigint[], bigint[], integer[], text) IS 'Applies rounds of updates and increments as one change of each row, or undoes it and answers false so that the chunk writer runs the rounds'' own statements. Called by the chunk writer.';
