-- The records of an import's scratch table whose values the target's columns refuse, found in one scan per refused
-- record: a COPY per stretch between two of them pays COPY's start (and its first thousand rows' slots) each time.
-- `source` holds the records as COPY read them, their fields as text in c1 … cn (the order of `columns`), and `ord`,
-- each one's place. Each field is read as COPY reads it: by its type's input function with the column's type modifier
-- (a value too long for varchar(n) is refused, not cut). Where that function cannot be called from SQL (it returns a
-- pseudo-type: arrays, domains, enums, ranges, composites) the field is cast instead, which cuts what is too long for an
-- array of varchar(n) or a domain over it: the target then refuses that record itself, and only a record refused for a
-- later field too is reported for that one. The scan's every record first counts itself with `counter` (a sequence: a
-- refused scan's count stays), so that the record a scan stopped at is its count's n-th in the same order, and the next
-- scan starts after it. Returns each refused record's ord with the SQLSTATE and message of its first value refused,
-- and that value's column.
CREATE OR REPLACE FUNCTION batch.refused_values(source regclass, target regclass, columns text[], counter regclass)
 RETURNS TABLE(ord bigint, code text, message text, field text)
 LANGUAGE plpgsql
AS $$
  DECLARE
    casts text[];
    scan text;
    started bigint;
    after tid := '(0,0)';
    refused tid;
  BEGIN
    SELECT array_agg(CASE
             WHEN r.typtype = 'p' THEN format('c%s::%s', n, format_type(a.atttypid, a.atttypmod))
             WHEN f.pronargs = 1 THEN format('%s(c%s::cstring)', f.oid::regproc, n)
             ELSE format('%s(c%s::cstring, %s, %s)', f.oid::regproc, n,
                         CASE WHEN t.typelem <> 0 THEN t.typelem ELSE t.oid END, a.atttypmod)
           END ORDER BY n) INTO casts
      FROM unnest(columns) WITH ORDINALITY AS c(name, n)
      JOIN pg_attribute a ON a.attrelid = target AND a.attname = c.name
      JOIN pg_type t ON t.oid = a.atttypid
      JOIN pg_proc f ON f.oid = t.typinput
      JOIN pg_type r ON r.oid = f.prorettype;
    -- num_nulls takes every value, in order, after the count (an AND or a row could stop at a NULL, or be reordered);
    -- a function takes 100 arguments at most: the values go in groups
    SELECT format('SELECT FROM %s WHERE ctid > $1 AND num_nulls(nextval(%L), %s) < 0', source, counter,
                  string_agg(format('num_nulls(%s)', array_to_string(casts[g * 90 + 1 : g * 90 + 90], ', ')), ', '))
      INTO scan
      FROM generate_series(0, (cardinality(casts) - 1) / 90) g;
    LOOP
      started := nextval(counter);
      BEGIN
        EXECUTE scan USING after;
        RETURN;
      EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
        GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
      END;
      EXECUTE format('SELECT ctid, ord FROM %s WHERE ctid > $1 OFFSET $2 LIMIT 1', source)
        INTO refused, ord USING after, currval(counter) - started - 1;
      field := NULL;
      FOR i IN 1 .. cardinality(casts) LOOP
        BEGIN
          EXECUTE format('SELECT %s FROM %s WHERE ctid = $1', casts[i], source) USING refused;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
          field := columns[i];
          EXIT;
        END;
      END LOOP;
      RETURN NEXT;
      after := refused;
    END LOOP;
  END;
$$;
COMMENT ON FUNCTION batch.refused_values(regclass, regclass, text[], regclass) IS 'The records of an import''s scratch table whose values the target''s columns refuse, in one scan, each with the SQLSTATE, message and column of its first refused value. Called by an import''s chunk whose COPY failed.';
