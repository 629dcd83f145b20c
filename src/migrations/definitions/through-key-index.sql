-- A statement that finds its rows of a target through a unique key (the writer's UPDATE … FROM or DELETE … USING over
-- the operations' typed rows, returning one row of ids), run with nested loops only: each of its rows one lookup of
-- the key's index. Left to choose, the planner joins a statement's thousands of rows with a merge join, which reads
-- the index from its start up to the highest key, or with a hash join, which reads the whole table: either costs
-- more the larger the table grows, however few rows the statement changes.
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
