import type { ClaimedOperation, OperationOutcome } from '../../interfaces/chunk.interfaces';
import { eachOperation, IdSpan, idRuns, lastId, splitRun } from '../storage/id-runs';

/**
 * The `operations.settled` notifications (docs/api.md#operationssettled). A chunk writes, with its work, one outbox row per
 * client (more for a large chunk) saying what its message reports (settledMessages); the message's text is made when
 * it is sent, in PostgreSQL (batch.settled_message, migration 1764900000000): the client's name, the execution and
 * when it ended, and each operation in order of id with its outcome, target, type, idempotency key and label.
 */

/** A message as the outbox holds it until it is sent. */
export interface SettledMessage {
  clientId: string;
  /** The ids of the operations it reports, as an int8multirange literal. */
  operations: string;
  /** The outcomes other than "completed, one row affected", by operation id: each one's fields as JSON text. */
  exceptions: string | null;
  /** The length of its text, about. */
  size: number;
}

/**
 * A message is cut at about this many characters: none grows past what brokers and consumers take comfortably,
 * however large the chunk (the contract lets one client's operations come in several messages).
 */
export const MAX_MESSAGE_CHARS = 1_000_000;

/** A message's text around its operations: type, client (a name of up to 100 characters), execution, time. */
const ENVELOPE_CHARS = 300;
/** An operation's text but for its id, outcome, target, type, idempotency key and label (and the comma after it). */
const ITEM_CHARS = '{"id":"",,"target":,"type":"","idempotencyKey":,"label":},'.length;
/** The outcome of nearly every operation, as batch.settled_message writes it when the message has no other. */
const PLAIN_OUTCOME = '"status":"COMPLETED","rowsAffected":1,"error":null';
const LONGEST_TYPE = 'increment'.length;

/**
 * The messages of a chunk's outcomes: each client's operations in order of id, cut at about MAX_MESSAGE_CHARS (a run
 * where it does not fit, by its operations' average size; a round taken apart first).
 */
export function settledMessages(outcomes: OperationOutcome[]): SettledMessage[] {
  const open = new Map<string, { spans: IdSpan[]; exceptions: Record<string, string>; size: number }>();
  const messages: SettledMessage[] = [];
  const close = (clientId: string) => {
    const { spans, exceptions, size } = open.get(clientId)!;
    const runs = idRuns(spans).map(([first, last]) => `[${first},${last}]`);
    const exceptional = Object.keys(exceptions).length > 0;
    messages.push({
      clientId,
      operations: `{${runs.join(',')}}`,
      exceptions: exceptional ? JSON.stringify(exceptions) : null,
      size,
    });
    open.delete(clientId);
  };
  const targets = new Map<string, number>();
  // a round's operations apart, so that each message holds ranges of ids, not ids scattered over the chunk
  const inOrder = outcomes.flatMap((o) =>
    o.operation.ids ? eachOperation(o.operation).map((operation) => ({ ...o, operation })) : [o],
  );
  for (const { operation, status, rowsAffected, error } of inOrder.sort(byId)) {
    const outcome =
      status === 'COMPLETED' && rowsAffected === 1
        ? null
        : JSON.stringify({ status, rowsAffected, error }).slice(1, -1);
    let target = targets.get(operation.target);
    if (target === undefined) targets.set(operation.target, (target = JSON.stringify(operation.target).length));
    // each operation's text but for its idempotency key and label (chars): the last id's length is the longest
    const each = ITEM_CHARS + lastId(operation).length + (outcome ?? PLAIN_OUTCOME).length + target + LONGEST_TYPE;
    for (let rest: ClaimedOperation | null = operation; rest;) {
      let message = open.get(rest.clientId);
      const fits = (size: number) => Math.floor((MAX_MESSAGE_CHARS - size) / (each + rest!.chars / rest!.count));
      if (message && fits(message.size) < 1) {
        close(rest.clientId);
        message = undefined;
      }
      if (!message) open.set(rest.clientId, (message = { spans: [], exceptions: {}, size: ENVELOPE_CHARS }));
      const [head, next]: [ClaimedOperation, ClaimedOperation | null] = splitRun(rest, Math.max(1, fits(message.size)));
      message.spans.push(head);
      if (outcome !== null) message.exceptions[head.id] = outcome;
      message.size += each * head.count + head.chars;
      rest = next;
    }
  }
  for (const clientId of [...open.keys()]) close(clientId);
  return messages;
}

/** Ids are decimal strings of up to 18 digits: the shorter is the smaller. */
function byId(a: OperationOutcome, b: OperationOutcome): number {
  const x = a.operation.id;
  const y = b.operation.id;
  return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
}
