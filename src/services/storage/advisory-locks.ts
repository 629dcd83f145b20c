import type { PoolClient } from 'pg';

/**
 * The service's PostgreSQL advisory locks, in one place so that no two share a key. Keys of one bigint; the target
 * locks use the two-int form, (TARGET_LOCK_SPACE, hashtext(target)), which cannot meet a one-key lock.
 */

/** Ingest holds it shared from drawing its first id to its commit; the claim's id horizon waits for none of them. */
export const INGEST_LOCK = 4242_0001;
/** Held by the instance running the migrations at start, so that instances starting together do not race. */
export const MIGRATION_LOCK = 4242_0002;
/** Key space of the transaction-scoped locks that give one target to one worker at a time. */
export const TARGET_LOCK_SPACE = 4242;
/**
 * Key space of the clients' locks, (CLIENT_LOCK_SPACE, id mod 2^31 - 1): a chunk holds its clients' shared while it reads
 * their grants (batch.client_grants); a revocation or a change of grants holds the client's exclusively.
 */
export const CLIENT_LOCK_SPACE = 4243;

/**
 * Waits for the target locks of these targets, held to the end of the transaction: a chunk holds its targets' while it
 * runs, so what the transaction reads next (each statement takes its own snapshot) is what the last chunk committed,
 * and no chunk reads these targets until it ends. Taken in one order, so that no two such transactions wait for each
 * other (chunks never wait: they pass over targets locked elsewhere).
 */
export async function lockTargets(tx: PoolClient, targets: string[]): Promise<void> {
  await tx.query(
    `SELECT pg_advisory_xact_lock(${TARGET_LOCK_SPACE}, hashtext(t)) FROM (SELECT DISTINCT unnest($1::text[]) AS t ORDER BY 1) locked`,
    [targets],
  );
}

/**
 * Waits for the lock of a client, held to the end of the transaction, against every chunk reading its grants. Taken
 * after the targets' locks (lockTargets), as chunks take theirs, so that the two never wait for each other.
 */
export async function lockClient(tx: PoolClient, id: string): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(${CLIENT_LOCK_SPACE}, ($1::bigint % 2147483647)::int)`, [id]);
}

/**
 * Key space of the locks on a client's uploaded files, (IMPORT_FILES_LOCK_SPACE, id mod 2^31 - 1): an upload holds its
 * client's from naming its file to its commit (ImportFiles.finish), so that what it finds stored is what the uploads
 * before it committed: the same bytes sent twice at once are stored once, and the client's quota counts every file.
 */
export const IMPORT_FILES_LOCK_SPACE = 4244;
