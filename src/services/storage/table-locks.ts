/**
 * The table locks a chunk's writes (INSERT, UPDATE, DELETE: ROW EXCLUSIVE) wait behind: the modes that conflict with
 * it, granted or waited for (a lock waited for is granted first).
 */
const BLOCKING_MODES = `'ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'`;

/** SQL: whether another session holds or waits for a lock on the table `relation` (an oid) that writes wait behind. */
export const LOCKED_ELSEWHERE = (relation: string): string =>
  `EXISTS (SELECT FROM pg_locks l WHERE l.locktype = 'relation' AND l.relation = ${relation} ` +
  `AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) ` +
  `AND l.pid <> pg_backend_pid() AND l.mode IN (${BLOCKING_MODES}))`;
