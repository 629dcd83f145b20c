-- Every change of a client (created, its key rotated, its grants or rate limit changed, revoked), made by the
-- service or by an operator's SQL, is notified on the channel batch_clients_changed as it commits (trigger
-- clients_changed): each service process keeps the clients it authenticated while it listens there, and forgets them
-- on a notification.
CREATE OR REPLACE FUNCTION batch.notify_client_changes()
 RETURNS trigger
 LANGUAGE plpgsql
AS $$
  BEGIN
    PERFORM pg_notify('batch_clients_changed', '');
    RETURN NULL;
  END
$$;
COMMENT ON FUNCTION batch.notify_client_changes() IS 'Trigger function of clients_changed: notifies the channel batch_clients_changed, so that every process forgets the clients it keeps.';
