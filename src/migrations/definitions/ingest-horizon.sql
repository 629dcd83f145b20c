-- The id horizon of a claim: the sequence's last value, once every ingest transaction that could hold an id at or
-- below it has ended (ingest holds the lock shared from drawing its first id to its commit). No smaller id can appear
-- after it, so per target nothing is applied ahead of an operation created before it.
CREATE OR REPLACE FUNCTION batch.ingest_horizon(ingest_lock bigint)
 RETURNS bigint
 LANGUAGE plpgsql
AS $$
  DECLARE
    horizon bigint;
  BEGIN
    SELECT last_value INTO horizon FROM batch.operations_id_seq;
    PERFORM pg_advisory_lock(ingest_lock);
    PERFORM pg_advisory_unlock(ingest_lock);
    RETURN horizon;
  END
$$;
COMMENT ON FUNCTION batch.ingest_horizon(bigint) IS 'The id horizon of a claim: the last id drawn, once no ingest transaction can still hold one at or below it. Called by the chunk reader.';
