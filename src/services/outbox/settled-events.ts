import type { OperationOutcome } from '../../interfaces/chunk.interfaces';
import type { ISettledOperation, OperationType } from '../../interfaces/operation.interfaces';
import { shapeType } from '../ingest/row-identity';

/**
 * The `operations.settled` notifications (CONTRACT.md, section 3). A chunk writes, with its work, one outbox row per
 * client holding its whole message: the worker makes each client's list of operations (settledOperations), and the
 * chunk's statement puts it into the message with the client's name, the execution and when it ended
 * (SETTLED_EVENT_SQL). The relay publishes the text as it is.
 */

/**
 * Each client's settled operations, in order of id, as JSON text: its clients' ids, and their lists joined by
 * LIST_SEPARATOR (see settledLists).
 */
export function settledOperations(outcomes: OperationOutcome[]): { clientIds: string[]; lists: string } {
  const byClient = new Map<string, ISettledOperation[]>();
  for (const { operation, status, rowsAffected, error } of [...outcomes].sort((a, b) =>
    byId(a.operation.id, b.operation.id),
  )) {
    let list = byClient.get(operation.clientId);
    if (!list) byClient.set(operation.clientId, (list = []));
    list.push({
      id: operation.id,
      status,
      rowsAffected,
      error,
      target: operation.target,
      type: shapeType(operation.shape) ?? (null as unknown as OperationType), // unreadable: it failed for that
      idempotencyKey: operation.idempotencyKey,
      label: operation.label,
    });
  }
  return {
    clientIds: [...byClient.keys()],
    lists: [...byClient.values()].map((list) => JSON.stringify(list)).join(LIST_SEPARATOR),
  };
}

/** Between two clients' lists: a control character, which JSON text never holds unescaped. */
const LIST_SEPARATOR = '\u0001';

/** The lists of settledOperations() in SQL, from the parameter holding them. */
export function settledLists(parameter: string): string {
  return `string_to_array(${parameter}, chr(1))`;
}

/**
 * The message of each client, over `e` (the execution, as inserted) and `m` (client_id, operations: the client's list);
 * the fields other than the operations are made here, where the execution's id and end are known.
 */
export const SETTLED_EVENT_SQL = `
  '{"type":"operations.settled","client":' || to_json(c.name)::text || ',"executionId":"' || e.id
  || '","settledAt":"' || to_char(e.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  || '","operations":' || m.operations || '}'`;

/** Ids are decimal strings of up to 18 digits: the shorter is the smaller. */
function byId(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
