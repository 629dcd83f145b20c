import type { IOperationError } from '../../interfaces/operation.interfaces';

/**
 * What an error from the database (or from the way to it) means, in one place: the ingest path, the chunk engine and
 * the transports ask here.
 */

/**
 * SQLSTATEs meaning the database cannot be reached or take work now: connection, shutdown, too many connections, disk
 * full, a server that is read-only (a standby after a failover), a login refused or a database not there (a
 * configuration being changed). Nothing about the work itself: wait, and retry once it is back.
 */
const CONNECTION_SQLSTATE = /^(08|57P0[1-3]|53[013]00|25006|28000|28P01|3D000)/;
const CONNECTION_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
// "Query read timeout": a statement given a timeout of its own (NamedDatabases.query) that the server did not answer
const CONNECTION_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable|Query read timeout/i;

/** The database could not be reached, or went away: nothing about the work itself; retry once it is back. */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | null | undefined;
  if (typeof e?.code === 'string' && (CONNECTION_SQLSTATE.test(e.code) || CONNECTION_NODE_CODES.has(e.code)))
    return true;
  return typeof e?.message === 'string' && CONNECTION_MESSAGES.test(e.message);
}

/**
 * The work met other work (serialization failure, deadlock, lock timeout, statement cancelled) or a limit of the server
 * (out of memory or of its lock table, a configured limit): it may pass again, or in smaller parts.
 */
const CONFLICT_SQLSTATE = /^(40001|40P01|55P03|57014|53200|53400)$/;

export function isConcurrencyConflict(error: unknown): boolean {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && CONFLICT_SQLSTATE.test(code);
}

/** A lock waited for longer than lock_timeout: a row (or table) held by another transaction, maybe another application's. */
export function isLockTimeout(error: unknown): boolean {
  return sqlState(error) === '55P03';
}

/**
 * The SQLSTATEs that fail a chunk as a whole rather than an operation (connection lost or a conflict), as a regular
 * expression PostgreSQL reads too (batch.apply_in_parts raises them again).
 */
export const CHUNK_FAILURE_SQLSTATE = `${CONNECTION_SQLSTATE.source}|${CONFLICT_SQLSTATE.source}`;

/** The SQLSTATE of an error the database raised, or null for anything else. */
export function sqlState(error: unknown): string | null {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/** An error the chunk engine raises itself (the skip limit, say): its message names no client's value. */
export class EngineError extends Error {}

/**
 * What may be shown to every client whose operations a chunk settled: the SQLSTATE and the constraint or column, never
 * the database's message, which may quote one client's value (`invalid input syntax for type inet: "…"`).
 */
export function publicReason(error: unknown): string {
  if (error instanceof EngineError) return error.message;
  const state = sqlState(error);
  if (state === null)
    return isConnectionError(error)
      ? 'the database connection failed'
      : `an error in the service (${errorName(error)})`;
  const { constraint, column } = error as { constraint?: string; column?: string };
  return `SQLSTATE ${state}${constraint ? ` (constraint ${constraint})` : column ? ` (column ${column})` : ''}`;
}

/** The database quotes values in its messages (`invalid input syntax for type inet: "…"`): kept to this length. */
const MAX_ERROR_MESSAGE = 2000;

/**
 * An operation's own error, read by its owner and admins: the SQLSTATE and the database's message (of the cause,
 * for an error of the engine such as the skip limit), or INTERNAL for an error of the service.
 */
export function operationError(error: unknown): IOperationError {
  const cause = error instanceof EngineError && error.cause !== undefined ? error.cause : error;
  const code = sqlState(cause);
  if (code !== null) return { code, message: String((cause as Error).message).slice(0, MAX_ERROR_MESSAGE) };
  return { code: 'INTERNAL', message: `the service could not apply it: ${publicReason(cause)}` };
}

/** The whole story, for the service's own log. */
export function logReason(error: unknown): string {
  const e = (error ?? {}) as { code?: unknown; message?: unknown };
  return `${typeof e.code === 'string' ? e.code : errorName(error)}: ${typeof e.message === 'string' ? e.message : String(error)}`.slice(
    0,
    500,
  );
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}
