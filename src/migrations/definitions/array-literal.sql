-- A JSON array as a PostgreSQL array literal; nested arrays are further dimensions, except for json[] and jsonb[],
-- whose elements are JSON texts. JSON null (the array, or an element) is NULL.
CREATE OR REPLACE FUNCTION batch.array_literal(value jsonb, json_elements boolean)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE STRICT
AS $$
  BEGIN
    IF jsonb_typeof(value) <> 'array' THEN RETURN NULL; END IF;
    RETURN '{' || coalesce((
      SELECT string_agg(CASE WHEN jsonb_typeof(e) = 'null' THEN 'NULL'
                             WHEN jsonb_typeof(e) = 'array' AND NOT json_elements THEN batch.array_literal(e, false)
                             ELSE '"' || replace(replace(CASE WHEN json_elements THEN e::text ELSE e #>> '{}' END, '\', '\\'), '"', '\"') || '"'
                        END, ',' ORDER BY i)
        FROM jsonb_array_elements(value) WITH ORDINALITY AS a(e, i)), '') || '}';
  END
$$;
COMMENT ON FUNCTION batch.array_literal(jsonb, boolean) IS 'A JSON array as a PostgreSQL array literal, for the chunks'' statements that read array values from the stored JSON.';
