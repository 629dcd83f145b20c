-- The clients of a chunk as they are once no revocation or change of theirs is in progress. It takes each client's
-- advisory lock shared (a revocation or a change takes it exclusively, after its targets' locks), then reads them with
-- a snapshot taken after the wait: what a chunk applies, its clients were granted when it read them, and a revocation
-- answered before cannot be missed.
CREATE OR REPLACE FUNCTION batch.client_grants(ids bigint[], lock_space integer)
 RETURNS TABLE(id bigint, targets text[], admin boolean)
 LANGUAGE plpgsql
AS $$
  BEGIN
    PERFORM pg_advisory_xact_lock_shared(lock_space, (c % 2147483647)::int) FROM unnest(ids) AS c ORDER BY c;
    RETURN QUERY SELECT c.id, c.targets, c.admin FROM batch.clients c WHERE c.id = ANY (ids) AND c.revoked_at IS NULL;
  END
$$;
COMMENT ON FUNCTION batch.client_grants(bigint[], integer) IS 'The grants of a chunk''s clients once no revocation or change of theirs is in progress (their advisory locks taken shared). Called by every chunk before it applies.';
