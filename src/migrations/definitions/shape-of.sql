-- The shape of an operation stored without one (before planning was computed at ingest, or by hand), from its JSON;
-- its keys version is empty, which makes the planner give it a statement of its own.
CREATE OR REPLACE FUNCTION batch.shape_of(type text, row_values jsonb, row_key jsonb, conflict_key text[])
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
AS $$
  SELECT json_build_array(
    type,
    coalesce((SELECT array_agg(k ORDER BY k COLLATE "C") FROM jsonb_object_keys(row_values) k), '{}'),
    CASE type WHEN 'insert' THEN NULL WHEN 'upsert' THEN conflict_key
              ELSE (SELECT array_agg(k ORDER BY k COLLATE "C") FROM jsonb_object_keys(row_key) k) END,
    '')::text
$$;
COMMENT ON FUNCTION batch.shape_of(text, jsonb, jsonb, text[]) IS 'The planning shape of an operation stored without one, from its JSON; its empty keys version gives it a statement of its own. Used when such an operation is retried.';
