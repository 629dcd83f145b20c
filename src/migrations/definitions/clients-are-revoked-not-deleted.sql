-- Clients are revoked, never deleted (trigger clients_never_deleted, once per statement): every client_id the
-- service stores, taken from an authenticated client, keeps its client, where a foreign key from operations to clients
-- ran one check per inserted operation.
CREATE OR REPLACE FUNCTION batch.clients_are_revoked_not_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
AS $$
  BEGIN
    RAISE EXCEPTION 'batch.clients rows are revoked (revoked_at), never deleted: operations refer to them';
  END
$$;
COMMENT ON FUNCTION batch.clients_are_revoked_not_deleted() IS 'Trigger function of clients_never_deleted: refuses to delete clients, which are revoked instead.';
