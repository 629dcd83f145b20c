/**
 * The `operations.settled` notifications (CONTRACT.md, section 3). A chunk writes, with its work, one outbox row per
 * client naming the operations it settled (JobRepository); the message itself is made from their outcomes by
 * `batch.settled_event(outbox_id)` (migration 1764500000000) when the relay sends it, off the chunk's path.
 */

/** Unsent messages, oldest first, each as the text to publish; locked so that relays share the work. */
export const UNSENT_MESSAGES_SQL = `
  SELECT id, routing_key, coalesce(payload, batch.settled_event(id))::text AS payload
    FROM batch.outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`;

/**
 * Before an outcome an unsent message refers to goes (a retry of operation $1), the message is made now, as it was
 * settled, and kept in the row.
 */
export const MAKE_UNSENT_MESSAGES_OF_OPERATION = `
  UPDATE batch.outbox SET payload = batch.settled_event(id) WHERE sent_at IS NULL AND payload IS NULL AND $1::bigint = ANY (ids)`;
