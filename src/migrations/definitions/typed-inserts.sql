-- The values of inserts kept in their target's types beside their JSON, written at ingest, so that applying them reads
-- typed rows: an insert statement that casts each value from the stored JSON costs about a third more than COPY of the
-- same rows, one that reads them typed about as much. A target's stage is an unlogged table in the schema batch
-- (batch.typed_targets names it): the operation's id (operation_id) and each column of the target in the type the
-- writer casts to. Only a cache: the JSON stays what operations are read and applied from wherever a row is missing
-- (a crash empties an unlogged table; operations stored before the stage existed have none), and the writer checks
-- that a statement found a row for each of its operations.

-- The stage of a target, made where it has none yet, its columns changed since (a new stage; the old one is dropped
-- by retention) or it was dropped by hand (made again, empty), for the columns (names) and types given, as the
-- catalog's cast type names them (CAST_TYPE in catalog.service.ts: the writer compares the two). NULL stage where a
-- column is of a type whose text could read differently when the operation is applied (what the validator does not
-- check exactly: intervals, enums, domains, arrays, …; a time with a time zone given without its offset takes the one
-- of the day it is read on), or where names is NULL (no such table).
CREATE OR REPLACE FUNCTION batch.typed_stage(target text, names text[], types text[])
 RETURNS batch.typed_targets
 LANGUAGE plpgsql
AS $$
  DECLARE
    found batch.typed_targets;
    typeable boolean;
    stage text;
  BEGIN
    -- one at a time per target, and never waited for: whoever finds another transaction making it goes without
    IF NOT pg_try_advisory_xact_lock(hashtext('batch.typed_stage'), hashtext(target)) THEN
      SELECT * INTO found FROM batch.typed_targets t WHERE t.target = typed_stage.target;
      RETURN found;
    END IF;
    -- built-in types as format_type spells them: it qualifies a type of the same name in another schema
    SELECT coalesce(bool_and(t IN ('smallint', 'integer', 'bigint', 'numeric', 'real', 'double precision', 'boolean',
                                   'uuid', 'text', 'character varying', 'bpchar', 'date', 'timestamp without time zone',
                                   'timestamp with time zone', 'time without time zone', 'bytea')), false)
      INTO typeable FROM unnest(types) AS u(t);
    typeable := typeable AND cardinality(names) = cardinality(types)
                AND NOT 'operation_id' = ANY (names); -- the stage's own column
    SELECT * INTO found FROM batch.typed_targets t WHERE t.target = typed_stage.target;
    IF found.target IS NOT NULL AND found.columns IS NOT DISTINCT FROM names AND found.types IS NOT DISTINCT FROM types
       AND (found.stage IS NULL OR to_regclass(found.stage) IS NOT NULL) THEN -- a stage dropped by hand is made again
      RETURN found;
    END IF;
    IF typeable THEN
      -- named after what it keeps: where a target's columns come back to what they were, so does its stage (whose
      -- rows, each written once from its operation, are still right)
      stage := 'typed_rows_' || left(md5(target || ' ' || names::text || ' ' || types::text), 16);
      -- operation_id is unique, but a unique index costs ingest a lookup per row, twice what a plain one does
      EXECUTE format('CREATE UNLOGGED TABLE IF NOT EXISTS batch.%I (operation_id bigint NOT NULL, %s)', stage,
                     (SELECT string_agg(format('%I %s', n, t), ', ') FROM unnest(names, types) AS u(n, t)));
      EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON batch.%I (operation_id)', stage || '_operation', stage);
    END IF;
    INSERT INTO batch.typed_targets AS t (target, stage, columns, types)
    VALUES (typed_stage.target, CASE WHEN stage IS NOT NULL THEN 'batch.' || quote_ident(stage) END, names, types)
    ON CONFLICT ON CONSTRAINT typed_targets_pkey
    DO UPDATE SET stage = excluded.stage, columns = excluded.columns, types = excluded.types
    RETURNING * INTO found;
    RETURN found;
  END
$$;
COMMENT ON FUNCTION batch.typed_stage(target text, names text[], types text[]) IS 'The stage of a target''s inserts (batch.typed_targets) for the columns and types given, made where it has none, its columns changed or it was dropped. Called by the service for a target in another database, whose catalog it reads: at its first insert, and where a column was retyped.';

-- The same for a table of the main database, its columns and types read from the catalog here (no table of that name:
-- a target in another database, whose stage the service makes; a NULL stage until it does).
CREATE OR REPLACE FUNCTION batch.typed_stage(target text)
 RETURNS batch.typed_targets
 LANGUAGE sql
AS $$
  SELECT batch.typed_stage(target, array_agg(a.attname::text ORDER BY a.attnum),
                           array_agg(CASE t.typname WHEN 'bpchar' THEN 'bpchar' WHEN '_bpchar' THEN 'bpchar[]'
                                                    WHEN 'bit' THEN 'varbit' WHEN '_bit' THEN 'varbit[]'
                                                    ELSE format_type(a.atttypid, NULL) END ORDER BY a.attnum))
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
   -- the table whose schema and name make the target's name, unless two do (a dot in a name)
   WHERE a.attrelid = (SELECT min(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE c.relkind IN ('r', 'p') AND n.nspname || '.' || c.relname = target AND n.nspname <> 'batch'
                       HAVING count(*) = 1)
     AND a.attnum > 0 AND NOT a.attisdropped;
$$;
COMMENT ON FUNCTION batch.typed_stage(target text) IS 'The stage of a target''s inserts (batch.typed_targets) for a table of the main database. Called by batch.type_inserts and the writer.';

-- Writes the typed rows of a flush's inserts of one target and shape (their ids and values as the flush stored them:
-- in order of id, which no sort is paid for, as nothing depends on it); returns how many. The target's stage is made
-- first where it has none (or lacks a column the shape gives, or was dropped). None where the target keeps no stage,
-- or where anything fails (a value refused, say): the operations are then applied from their JSON, and fail there as
-- they would have.
CREATE OR REPLACE FUNCTION batch.type_inserts(target text, shape text, ids bigint[], row_values jsonb[])
 RETURNS integer
 LANGUAGE plpgsql
AS $$
  DECLARE
    stage batch.typed_targets;
    given text[];
    names text;
    casts text;
    written integer;
  BEGIN
    given := ARRAY(SELECT jsonb_array_elements_text(shape::jsonb -> 1));
    SELECT * INTO stage FROM batch.typed_targets t WHERE t.target = type_inserts.target;
    IF stage.target IS NULL
       OR (stage.stage IS NOT NULL AND (NOT given <@ stage.columns OR to_regclass(stage.stage) IS NULL)) THEN
      stage := batch.typed_stage(target);
    END IF;
    IF stage.stage IS NULL OR NOT given <@ stage.columns THEN
      RETURN 0;
    END IF;
    SELECT string_agg(quote_ident(g.c), ', ' ORDER BY g.k), string_agg(format('(u.v->>%L)::%s', g.c, s.t), ', ' ORDER BY g.k)
      INTO names, casts
      FROM unnest(given) WITH ORDINALITY AS g(c, k) JOIN unnest(stage.columns, stage.types) AS s(n, t) ON s.n = g.c;
    EXECUTE format('INSERT INTO %s (operation_id, %s) SELECT u.id, %s FROM unnest($1, $2) AS u(id, v)',
                   stage.stage, names, casts)
      USING ids, row_values;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
  EXCEPTION WHEN OTHERS THEN
    RETURN 0; -- a cache: whatever went wrong, the operations are applied from their JSON
  END
$$;
COMMENT ON FUNCTION batch.type_inserts(target text, shape text, ids bigint[], row_values jsonb[]) IS 'The typed rows of a flush''s inserts of one target and shape, written to its stage (batch.typed_targets). Called by the ingest flush.';

-- Retention of the stages: drops those batch.typed_targets no longer names (a stage is dropped only while nothing
-- holds it), and deletes the rows of operations taken: a target's rows up to the first stream of it that has
-- operations left to take (every stream taken: up to the last one taken). Returns the rows deleted. A row deleted too
-- soon costs only speed: its operation is then applied from its JSON.
CREATE OR REPLACE FUNCTION batch.empty_typed_stages()
 RETURNS bigint
 LANGUAGE plpgsql
AS $$
  DECLARE
    stage record;
    taken bigint;
    deleted bigint := 0;
    n bigint;
    waits text := current_setting('lock_timeout');
  BEGIN
    PERFORM set_config('lock_timeout', '100ms', true);
    FOR stage IN
      SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'batch' AND c.relkind = 'r' AND c.relname LIKE 'typed\_rows\_%'
         AND NOT EXISTS (SELECT FROM batch.typed_targets t WHERE t.stage = 'batch.' || quote_ident(c.relname))
    LOOP
      -- named again meanwhile (a target's columns back to what they were)?
      CONTINUE WHEN EXISTS (SELECT FROM batch.typed_targets t WHERE t.stage = 'batch.' || quote_ident(stage.relname));
      BEGIN
        EXECUTE format('DROP TABLE IF EXISTS batch.%I', stage.relname);
      EXCEPTION WHEN lock_not_available THEN
        NULL;
      END;
    END LOOP;
    PERFORM set_config('lock_timeout', waits, true);
    FOR stage IN SELECT t.target, t.stage FROM batch.typed_targets t WHERE to_regclass(t.stage) IS NOT NULL LOOP
      SELECT coalesce(min(s.taken_through) FILTER (WHERE s.left), max(s.taken_through)) INTO taken
        FROM (SELECT s.taken_through,
                     EXISTS (SELECT FROM batch.operations o
                              WHERE (o.target, o.priority, o.id) > (s.target, s.priority, s.taken_through)
                                AND (o.target, o.priority, o.id) <= (s.target, s.priority, 9223372036854775807)
                                AND o.not_before IS NULL) AS left
                FROM batch.streams s WHERE s.target = stage.target) s;
      CONTINUE WHEN taken IS NULL;
      EXECUTE format('DELETE FROM %s WHERE operation_id <= $1', stage.stage) USING taken;
      GET DIAGNOSTICS n = ROW_COUNT;
      deleted := deleted + n;
    END LOOP;
    RETURN deleted;
  END
$$;
COMMENT ON FUNCTION batch.empty_typed_stages() IS 'Retention of the stages of inserts (batch.typed_targets). Called by retention.';
