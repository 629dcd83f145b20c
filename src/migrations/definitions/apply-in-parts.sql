-- A statement that failed, applied again in parts down to its failing operations, inside the database (one round
-- trip for the whole fallback). `statement` is the writer's SQL over the runs of ids $1 and $2 (unless `every_row`, it
-- returns one row: NULL when every operation affected a row, else the ids of those that did), `ids` its operations in
-- order of application; it failed as a whole, so its two halves come first. A part is tried as one statement in a block
-- of its own (a subtransaction, released or rolled back at once, so none stays open); one that fails is split in two
-- halves, the first ceil(n/2) operations applied first. A part at least as large as one failure per operation settled so
-- far is expected to fail and is split untried: where most operations fail, this is one statement per operation instead
-- of two. An error matching `chunk_failure` (a conflict with other work, a lost connection, a limit of the server) is
-- raised again: it fails the chunk as a whole, not an operation.
-- Returns each operation once, in the order they were settled (their order of application): the rows it affected, or the
-- SQLSTATE and message of its own failure; and `statements`, how many statements had run when it was settled.
CREATE OR REPLACE FUNCTION batch.apply_in_parts(statement text, ids bigint[], every_row boolean, chunk_failure text)
 RETURNS TABLE(op bigint, affected integer, code text, message text, statements integer)
 LANGUAGE plpgsql
AS $$
  DECLARE
    half int := 1 + (cardinality(ids) + 1) / 2;
    parts int[] := ARRAY[half, cardinality(ids) + 1, 1, half]; -- bounds [from, to) of the parts left, the next last
    lo int;
    hi int;
    part bigint[];
    returned bigint[];
    failed int := 0;
    settled int := 0;
  BEGIN
    statements := 0;
    WHILE cardinality(parts) > 0 LOOP
      lo := parts[cardinality(parts) - 1];
      hi := parts[cardinality(parts)];
      parts := parts[1:cardinality(parts) - 2];
      CONTINUE WHEN hi <= lo;
      half := lo + (hi - lo + 1) / 2;
      IF hi - lo > 1 AND failed > 0 AND failed * (hi - lo) >= settled THEN
        parts := parts || ARRAY[half, hi, lo, half];
        CONTINUE;
      END IF;
      part := ids[lo:hi - 1];
      returned := NULL;
      statements := statements + 1;
      BEGIN
        IF every_row THEN
          EXECUTE statement USING part, part;
        ELSE
          EXECUTE statement USING part, part INTO returned;
        END IF;
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
        IF code ~ chunk_failure THEN
          RAISE;
        END IF;
        IF hi - lo > 1 THEN
          parts := parts || ARRAY[half, hi, lo, half];
        ELSE
          failed := failed + 1;
          settled := settled + 1;
          op := part[1];
          affected := NULL;
          RETURN NEXT;
        END IF;
        CONTINUE;
      END;
      settled := settled + (hi - lo);
      RETURN QUERY
        SELECT p.id, CASE WHEN returned IS NULL THEN 1 ELSE coalesce(c.n, 0) END, NULL::text, NULL::text, statements
          FROM unnest(part) WITH ORDINALITY AS p(id, place)
          LEFT JOIN (SELECT x, count(*)::int AS n FROM unnest(returned) AS x GROUP BY x) c ON c.x = p.id
         ORDER BY p.place;
    END LOOP;
  END
$$;
COMMENT ON FUNCTION batch.apply_in_parts(text, bigint[], boolean, text) IS 'Applies a statement that failed as a whole again in parts, down to its failing operations, in one round trip: each operation''s rows affected or its own error. Called by the chunk writer.';
