import type { OperationOutcome } from '../../interfaces/chunk.interfaces';
import type { ISettledOperation, OperationType } from '../../interfaces/operation.interfaces';
import { shapeType } from '../ingest/row-identity';

/**
 * The `operations.settled` notifications (CONTRACT.md, section 3). A chunk writes, with its work, one outbox row per
 * client (more for a large chunk) holding its whole message: the worker makes the lists of operations
 * (settledOperations), and the chunk's statement puts each into its message with the client's name, the execution
 * and when it ended (SETTLED_EVENT_SQL). The relay publishes the text as it is.
 */

/**
 * A message's list is cut at about this many characters: no message grows past what brokers and consumers take
 * comfortably, however large the chunk (the contract lets one client's operations come in several messages).
 */
export const MAX_LIST_CHARS = 1_000_000;

/**
 * Each message's settled operations, in order of id, as JSON text: one list per client, or more past MAX_LIST_CHARS;
 * the clients' ids, one per list, and the lists joined by LIST_SEPARATOR (see settledLists).
 */
export function settledOperations(outcomes: OperationOutcome[]): { clientIds: string[]; lists: string } {
  const byClient = new Map<string, { items: string[]; chars: number }[]>();
  for (const { operation, status, rowsAffected, error } of [...outcomes].sort((a, b) =>
    byId(a.operation.id, b.operation.id),
  )) {
    const item = JSON.stringify({
      id: operation.id,
      status,
      rowsAffected,
      error,
      target: operation.target,
      type: shapeType(operation.shape) ?? (null as unknown as OperationType), // unreadable: it failed for that
      idempotencyKey: operation.idempotencyKey,
      label: operation.label,
    } satisfies ISettledOperation);
    const lists = byClient.get(operation.clientId) ?? [];
    byClient.set(operation.clientId, lists);
    const list = lists.at(-1);
    if (list && list.chars + 1 + item.length <= MAX_LIST_CHARS) {
      list.items.push(item);
      list.chars += item.length + 1;
    } else lists.push({ items: [item], chars: item.length + 2 });
  }
  const clientIds: string[] = [];
  const texts: string[] = [];
  for (const [clientId, lists] of byClient) {
    for (const { items } of lists) {
      clientIds.push(clientId);
      texts.push(`[${items.join(',')}]`);
    }
  }
  return { clientIds, lists: texts.join(LIST_SEPARATOR) };
}

/** Between two lists: a control character, which JSON text never holds unescaped. */
const LIST_SEPARATOR = '\u0001';

/** The lists of settledOperations() in SQL, from the parameter holding them. */
export function settledLists(parameter: string): string {
  return `string_to_array(${parameter}, chr(1))`;
}

/**
 * The message of each list, over `e` (the execution, as inserted) and `m` (client_id, operations: the list);
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
