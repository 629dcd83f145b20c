import type { ClaimedOperation, OperationOutcome } from '../../interfaces/chunk.interfaces';
import { ByteWriter } from '../byte-writer';
import { shapeType } from '../ingest/row-identity';
import { eachId, eachOperation, idBitmap, IdSpan, idRuns, isMarked, lastId, splitRun } from '../storage/id-runs';

/**
 * The `operations.settled` notifications (docs/api.md#operationssettled). A chunk writes, with its work, one outbox row per
 * client (more for a large chunk) saying what its message reports (settledMessages): its operations as runs of ids
 * with the target and type they share, and the outcomes other than plain completion. The message's text is made when
 * it is sent, by the relay (or by retention, before the operations go): the database gives the client's name, the
 * chunk and when it ended, and the few operations the runs do not say all of (those with an idempotency key or a label,
 * batch.settled_parts); settledText writes the rest, each operation in order of id.
 */

/**
 * Runs of a message's operations: first and last id, the target and type they share (null where not known), and, where
 * some completed affecting no row, which (idBitmap).
 */
export type MessageRun = [first: string, last: string, target: string, type: string | null, noRows?: string];

/** A message as the outbox holds it until it is sent. */
export interface SettledMessage {
  clientId: string;
  /** The operations it reports, in order of id, as JSON text of MessageRun[]. */
  runs: string;
  /** The outcomes other than "completed, one row affected" or none, by operation id: each one's fields as JSON text. */
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
/** The outcome of nearly every operation, as settledText writes it when the message has no other. */
const PLAIN_OUTCOME = '"status":"COMPLETED","rowsAffected":1,"error":null';
/** The outcome of an operation that found no row (an update or delete of a row gone), as its run's bitmap says. */
const NO_ROW_OUTCOME = '"status":"COMPLETED","rowsAffected":0,"error":null';
const LONGEST_TYPE = 'increment'.length;

/** The ids of the operations that completed affecting no row: those missed in runs and rounds, and single ones. */
export function missedIds(outcomes: OperationOutcome[]): Set<string> {
  const missed = new Set<string>();
  for (const { status, rowsAffected, operation, missed: ids } of outcomes) {
    if (status !== 'COMPLETED') continue;
    if (rowsAffected === 0) missed.add(operation.id);
    if (ids) for (const id of ids) missed.add(id);
  }
  return missed;
}

/**
 * The messages of a chunk's outcomes: each client's operations in order of id, cut at about MAX_MESSAGE_CHARS (a run
 * where it does not fit, by its operations' average size; a round taken apart first). Those that completed affecting
 * no row (`missed`: the chunk's, its outcomes' missedIds unless given) are marked in their runs, not written out.
 */
export function settledMessages(
  outcomes: OperationOutcome[],
  missed: ReadonlySet<string> = missedIds(outcomes),
): SettledMessage[] {
  const open = new Map<string, { groups: SpanGroup[]; exceptions: Record<string, string>; size: number }>();
  const messages: SettledMessage[] = [];
  const close = (clientId: string) => {
    const { groups, exceptions, size } = open.get(clientId)!;
    const runs = groups.flatMap(({ spans, target, type }) =>
      idRuns(spans).map(([first, last]): MessageRun => {
        const noRows = idBitmap(first, last, missed);
        return noRows === null ? [first, last, target, type] : [first, last, target, type, noRows];
      }),
    );
    const exceptional = Object.keys(exceptions).length > 0;
    messages.push({
      clientId,
      runs: JSON.stringify(runs),
      exceptions: exceptional ? JSON.stringify(exceptions) : null,
      size,
    });
    open.delete(clientId);
  };
  const targets = new Map<string, number>();
  let shape: string | undefined;
  let type: string | null = null;
  // a round's operations apart, so that each message holds ranges of ids, not ids scattered over the chunk
  const inOrder = outcomes.flatMap((o) =>
    o.operation.ids ? eachOperation(o.operation).map((operation) => ({ ...o, operation })) : [o],
  );
  for (const { operation, status, rowsAffected, error } of inOrder.sort(byId)) {
    // none where it completed affecting one row, or none (its run's bitmap tells)
    const outcome =
      status === 'COMPLETED' && (rowsAffected === 1 || rowsAffected === 0)
        ? null
        : JSON.stringify({ status, rowsAffected, error }).slice(1, -1);
    if (operation.shape !== shape) type = shapeType((shape = operation.shape)) ?? null; // a chunk's shapes repeat
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
      if (!message) open.set(rest.clientId, (message = { groups: [], exceptions: {}, size: ENVELOPE_CHARS }));
      const [head, next]: [ClaimedOperation, ClaimedOperation | null] = splitRun(rest, Math.max(1, fits(message.size)));
      const group = message.groups.at(-1);
      if (group?.target === head.target && group.type === type) group.spans.push(head);
      else message.groups.push({ spans: [head], target: head.target, type });
      if (outcome !== null) message.exceptions[head.id] = outcome;
      message.size += each * head.count + head.chars;
      rest = next;
    }
  }
  for (const clientId of [...open.keys()]) close(clientId);
  return messages;
}

/** Operations of a message one after the other in order of id, of one target and type. */
interface SpanGroup {
  spans: IdSpan[];
  target: string;
  type: string | null;
}

/** Ids are decimal strings of up to 18 digits: the shorter is the smaller. */
function byId(a: OperationOutcome, b: OperationOutcome): number {
  const x = a.operation.id;
  const y = b.operation.id;
  return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
}

/** What the database gives of a message to make its text (batch.settled_parts). */
export interface SettledParts {
  client: string;
  executionId: string;
  settledAt: string;
  /** The operations its runs do not say all of: id, target, type, idempotency key, label. */
  operations: [string, string, string, string | null, string | null][];
}

/**
 * A message's text as UTF-8 bytes, written as it is made: its operations in order of id, each with its outcome, target,
 * type, idempotency key and label. Each operation's text goes into the buffer at once and dies young: kept as strings
 * until joined, a message's 10,000 of them outlive the relay thread's young collections and grow its old generation by
 * the megabytes of every batch it sends.
 */
export function settledBytes(
  runs: MessageRun[],
  exceptions: Record<string, string> | null,
  parts: SettledParts,
): Buffer {
  const own = new Map(parts.operations.map((operation) => [operation[0], operation]));
  const out = new ByteWriter(4096); // a message of one operation takes a few hundred bytes
  out.text(
    `{"type":"operations.settled","client":${JSON.stringify(parts.client)},"executionId":"${parts.executionId}","settledAt":"${parts.settledAt}","operations":[`,
  );
  let comma = '';
  for (const [first, last, target, type, noRows] of runs) {
    const shared = `,"target":${JSON.stringify(target)},"type":${JSON.stringify(type)},"idempotencyKey":null,"label":null}`;
    const missed = noRows === undefined ? null : Buffer.from(noRows, 'hex');
    let k = 0;
    eachId(first, last, (id) => {
      const completed = missed !== null && isMarked(missed, k) ? NO_ROW_OUTCOME : PLAIN_OUTCOME;
      k++;
      const o = own.get(id);
      const rest = o
        ? `,"target":${JSON.stringify(o[1])},"type":${JSON.stringify(o[2])},"idempotencyKey":${JSON.stringify(o[3])},"label":${JSON.stringify(o[4])}}`
        : shared;
      out.text(`${comma}{"id":"${id}",${exceptions?.[id] ?? completed}${rest}`);
      comma = ',';
    });
  }
  out.text(']}');
  return out.data();
}

/** A message's text (settledBytes) as a string: for retention, which writes it to the outbox row. */
export function settledText(
  runs: MessageRun[],
  exceptions: Record<string, string> | null,
  parts: SettledParts,
): string {
  return settledBytes(runs, exceptions, parts).toString('utf8');
}

/**
 * The columns a message's text is made of, of the outbox row `row` (an expression): its text when it was written whole
 * (job.finished, or made by retention), else its runs, exceptions and batch.settled_parts.
 */
export const SETTLED_MESSAGE_COLUMNS = (row: string) =>
  `${row}.payload, ${row}.runs, ${row}.exceptions, CASE WHEN ${row}.payload IS NULL THEN batch.settled_parts(${row}) END AS parts`;

/** SETTLED_MESSAGE_COLUMNS as node-postgres reads them (json and jsonb parsed). */
export interface SettledMessageColumns {
  payload: string | null;
  runs: MessageRun[] | null;
  exceptions: Record<string, string> | null;
  parts: SettledParts | null;
}

/** The text of a message read with SETTLED_MESSAGE_COLUMNS. */
export function messageText({ payload, runs, exceptions, parts }: SettledMessageColumns): string {
  return payload ?? settledText(runs!, exceptions, parts!);
}

/** The same as UTF-8 bytes, as the relay publishes it. */
export function messageBytes({ payload, runs, exceptions, parts }: SettledMessageColumns): Buffer {
  return payload !== null ? Buffer.from(payload) : settledBytes(runs!, exceptions, parts!);
}
