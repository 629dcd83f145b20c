import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type {
  ICreateBatchOperationRequest,
  ICreateBatchOperationResponse,
  IGetBatchOperationResponse,
  IOperationListResponse,
  OperationStatus,
  OperationType,
  RowValues,
} from '../../interfaces/operation.interfaces';
import { IngestListeners } from '../../interfaces/ingest.interfaces';
import { BatchError } from '../batch-error';
import { AuthenticatedClient } from '../access/client.service';
import { Database } from '../storage/database';
import { lockTargets } from '../storage/advisory-locks';
import { afterPosition, MAX_ID } from '../storage/streams';
import { IngestBuffer } from './ingest-buffer.service';
import { CatalogService } from '../storage/catalog.service';
import { MAIN } from '../storage/named-databases';
import { makeTypedStage } from '../storage/typed-stages';
import { OperationValidator, ValidOperation } from './operation-validator.service';

export interface OperationRow {
  id: string;
  client_id: string;
  target: string;
  type: OperationType;
  row_values: RowValues | null;
  row_key: RowValues | null;
  conflict_key: string[] | null;
  idempotency_key: string | null;
  label: string | null;
  priority: number;
  not_before: Date | null;
  status: OperationStatus;
  attempts: number;
  rows_affected: number | null;
  error_code: string | null;
  error_message: string | null;
  chunk_id: string | null;
  created_at: Date;
  updated_at: Date;
  settled_at: Date | null;
}

export interface OperationListQuery {
  status?: OperationStatus;
  target?: string;
  label?: string;
  limit?: number;
  cursor?: string;
}

/**
 * A client's ($1) operations before the cursor ($4), as a range of an index by client and id: a row comparison, which
 * no index by id alone serves (with client_id = $1 as an equality, the planner may walk the primary key instead,
 * filtering its way through other clients' operations).
 */
const OWN_BEFORE_CURSOR = `(o.client_id, o.id) < ($1, coalesce($4::bigint, ${MAX_ID})) AND o.client_id = $1`;

/**
 * Where to find operations of each status (or of any), newest first, with their id, client and target: the table
 * that holds only operations of that status, through its index. Pending ones are in the deferred set or in their
 * stream after its position: each stream gives its newest page at most, with every filter applied ($1 client, $2
 * target, $3 label, $4 cursor, $5 the page), so that no page is cut short later. Completed ones are mostly recorded as
 * runs of ids (batch.settled_runs), so they are found among the operations, from the last one settled on (not through
 * a backlog that came after it).
 */
const LISTED: Record<OperationStatus | 'ANY', string> = {
  ANY: 'SELECT id, client_id, target FROM batch.operations',
  PENDING: `SELECT id, client_id, target FROM batch.deferred
            UNION ALL
            SELECT o.id, o.client_id, o.target FROM batch.streams s
             CROSS JOIN LATERAL (
               SELECT o.id, o.client_id, o.target FROM batch.operations o
                WHERE ${afterPosition('o', 's', `coalesce($4::bigint - 1, ${MAX_ID})`)} AND ($1::bigint IS NULL OR o.client_id = $1) AND ($3::text IS NULL OR o.label = $3)
                  AND NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id)
                ORDER BY o.target DESC, o.priority DESC, o.id DESC LIMIT $5) o
             WHERE $2::text IS NULL OR s.target = $2 OR substr(s.target, strpos(s.target, '.') + 1) = $2`,
  COMPLETED: `SELECT id, client_id, target FROM batch.operations
               WHERE id <= (SELECT greatest((SELECT last_id FROM batch.settled_runs ORDER BY first_id DESC LIMIT 1),
                                            (SELECT max(operation_id) FROM batch.outcomes)))`,
  FAILED: `SELECT operation_id AS id, client_id, target FROM batch.outcomes WHERE status = 'FAILED'`,
  CANCELLED: `SELECT operation_id AS id, client_id, target FROM batch.outcomes WHERE status = 'CANCELLED'`,
};

/**
 * The same for one client ($1), through its own indexes (by client and id), so that what a listing reads never grows
 * with other clients' operations: all of its operations newest first (the status is filtered after), its pending ones
 * among those after the slowest stream's position (any before it is settled, unless deferred), and its outcome rows.
 */
const LISTED_FOR_CLIENT: Record<OperationStatus | 'ANY', string> = {
  ANY: `SELECT id, client_id, target FROM batch.operations o WHERE ${OWN_BEFORE_CURSOR}`,
  PENDING: `SELECT id, client_id, target FROM batch.deferred o WHERE ${OWN_BEFORE_CURSOR}
            UNION ALL
            SELECT o.id, o.client_id, o.target FROM batch.operations o JOIN batch.streams s ON s.target = o.target AND s.priority = o.priority
             WHERE ${OWN_BEFORE_CURSOR} AND (o.client_id, o.id) > ($1, (SELECT coalesce(min(taken_through), 0) FROM batch.streams))
               AND o.not_before IS NULL AND o.id > s.taken_through AND NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id)`,
  COMPLETED: `SELECT id, client_id, target FROM batch.operations o WHERE ${OWN_BEFORE_CURSOR}`,
  FAILED: `SELECT operation_id AS id, client_id, target FROM batch.outcomes o
            WHERE (o.client_id, o.operation_id) < ($1, coalesce($4::bigint, ${MAX_ID})) AND o.client_id = $1 AND status = 'FAILED'`,
  CANCELLED: `SELECT operation_id AS id, client_id, target FROM batch.outcomes o
               WHERE (o.client_id, o.operation_id) < ($1, coalesce($4::bigint, ${MAX_ID})) AND o.client_id = $1 AND status = 'CANCELLED'`,
};

/** Creating, reading, cancelling and retrying operations: the domain behind both transports. */
@Injectable()
export class OperationService {
  constructor(
    private readonly db: Database,
    private readonly validator: OperationValidator,
    private readonly ingest: IngestBuffer,
    private readonly listeners: IngestListeners,
    private readonly catalog: CatalogService,
  ) {}

  /** Targets of the inserts this process stored: those in another database have had their stage made (typedElsewhere). */
  private readonly insertedInto = new Set<string>();

  async create(
    client: AuthenticatedClient,
    request: ICreateBatchOperationRequest,
    requestId?: string,
  ): Promise<ICreateBatchOperationResponse> {
    const [created] = await this.createMany(client, [request], requestId);
    return created;
  }

  /**
   * Validates every operation, then stores all of them in one statement or none (through the group commit of
   * IngestBuffer). `requestId` (the RPC request id) makes a redelivered request return what the first delivery
   * stored instead of storing it again.
   */
  async createMany(
    client: AuthenticatedClient,
    requests: ICreateBatchOperationRequest[],
    requestId: string = randomUUID(),
  ): Promise<ICreateBatchOperationResponse[]> {
    const operations = await this.validator.validateAll(client, requests);
    await this.typedElsewhere(operations);
    const rows = await this.ingest.store(client.id, requestId, operations);
    const stored = operations.filter((_, index) => rows[index] !== null);
    for (const listener of this.listeners.all) listener.afterCreate?.(stored);
    const existing = stored.length === operations.length ? [] : await this.findExisting(client, requestId, operations);
    return operations.map((operation, index) => {
      const row = rows[index];
      if (row) return { ...row, duplicate: false };
      const first =
        existing.find((e) => e.request_index === index) ??
        existing.find((e) => operation.idempotencyKey !== null && e.idempotency_key === operation.idempotencyKey);
      if (!first) throw new BatchError('CONFLICT', 'The operation was created concurrently and is gone; retry');
      return { id: first.id, status: first.status, createdAt: first.created_at.toISOString(), duplicate: true };
    });
  }

  /**
   * The first inserts into a table of another database that this process stores make its stage (makeTypedStage), so
   * that their values are kept typed from then on (batch.type_inserts) and copied there from typed rows: the queue's
   * database cannot read that table's catalog to make it itself. Where that fails, they are copied from their JSON.
   */
  private async typedElsewhere(operations: ValidOperation[]): Promise<void> {
    for (const { type, target } of operations) {
      if (type !== 'insert' || this.insertedInto.has(target)) continue;
      this.insertedInto.add(target);
      const table = await this.catalog.find(target).catch(() => null);
      if (table && table.database !== MAIN) await makeTypedStage(this.db.pool, table).catch(() => undefined);
    }
  }

  /**
   * What a request stored when it was delivered before (each operation with its place in the request), and the
   * operations of the client with the requests' idempotency keys. Operations stored before requests were recorded
   * (batch.requests) carry their place in their request key instead.
   */
  private findExisting(client: AuthenticatedClient, requestId: string, operations: ValidOperation[]) {
    return this.db.query<{
      id: string;
      status: OperationStatus;
      created_at: Date;
      request_index: number | null;
      idempotency_key: string | null;
    }>(
      `SELECT s.id, s.status, s.created_at, s.request_index, s.idempotency_key
         FROM batch.requests r JOIN batch.operation_states s ON s.id BETWEEN r.first_id AND r.last_id AND s.request_ref = r.id
        WHERE r.client_id = $1 AND r.request_id = $2
       UNION ALL
       SELECT id, status, created_at, substr(request_key, length($2) + 2)::int, idempotency_key FROM batch.operation_states
        WHERE client_id = $1 AND request_key = ANY($3)
       UNION ALL
       SELECT id, status, created_at, NULL, idempotency_key FROM batch.operation_states
        WHERE client_id = $1 AND idempotency_key = ANY($4)`,
      [
        client.id,
        requestId,
        operations.map((_, index) => `${requestId}#${index}`),
        operations.map((o) => o.idempotencyKey).filter((k) => k !== null),
      ],
    );
  }

  async get(client: AuthenticatedClient, id: string): Promise<IGetBatchOperationResponse> {
    return toResponse(await this.findOwned(client, id));
  }

  /** Newest first; a status filter walks where operations of that status are (LISTED, or LISTED_FOR_CLIENT). */
  async list(client: AuthenticatedClient, query: OperationListQuery): Promise<IOperationListResponse> {
    const limit = query.limit ?? 50;
    const listed = (client.admin ? LISTED : LISTED_FOR_CLIENT)[query.status ?? 'ANY'];
    const rows = await this.db.query<OperationRow>(
      `SELECT s.* FROM (${listed}) d JOIN batch.operation_states s ON s.id = d.id
        WHERE ($1::bigint IS NULL OR d.client_id = $1)
          AND ($2::text IS NULL OR d.target = $2 OR substr(d.target, strpos(d.target, '.') + 1) = $2)
          AND ($3::text IS NULL OR s.label = $3)
          AND ($4::bigint IS NULL OR d.id < $4)
          AND ($6::text IS NULL OR s.status = $6)
        ORDER BY d.id DESC LIMIT $5`,
      [
        client.admin ? null : client.id,
        query.target ?? null,
        query.label ?? null,
        query.cursor ?? null,
        limit + 1,
        query.status ?? null,
      ],
    );
    const items = rows.slice(0, limit).map(toResponse);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
  }

  /**
   * PENDING → CANCELLED (leaving the deferred set if it is there, and ending the run it was in: a run stands for
   * operations that are all pending); CONFLICT from any other state, and while its chunk is between its commits in
   * another database (PreparedChunks).
   */
  async cancel(client: AuthenticatedClient, id: string): Promise<IGetBatchOperationResponse> {
    return this.transition(
      client,
      await this.findOwned(client, id),
      'PENDING',
      `WITH cancelled AS (SELECT id, client_id, target, attempts FROM batch.operation_states WHERE id = $1 AND status = 'PENDING'
                            AND NOT EXISTS (SELECT FROM batch.prepared_chunks p WHERE p.operations @> $1::bigint)),
       undeferred AS (DELETE FROM batch.deferred d USING cancelled c WHERE d.id = c.id),
       unrun AS (DELETE FROM batch.stream_runs r USING cancelled c JOIN batch.operations o ON o.id = c.id
                  WHERE r.target = o.target AND r.priority = o.priority AND r.last_id >= c.id AND r.first_id <= c.id),
       counted AS (
         INSERT INTO batch.operation_counts (client_id, target, status, minute, added, removed)
         SELECT client_id, target, 'PENDING', date_trunc('minute', now()), 0, 1 FROM cancelled)
       INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, settled_at)
       SELECT id, client_id, target, 'CANCELLED', attempts, now() FROM cancelled RETURNING operation_id`,
    );
  }

  /**
   * FAILED → PENDING (same id): its outcome goes and it is in the deferred set, due at once, to be applied again;
   * CONFLICT from any other state, FORBIDDEN without the grant now.
   */
  async retry(client: AuthenticatedClient, id: string): Promise<IGetBatchOperationResponse> {
    const operation = await this.findOwned(client, id);
    const { target } = operation;
    if (!client.mayWrite(target))
      throw new BatchError('FORBIDDEN', `Client "${client.name}" is no longer granted target "${target}"`, { target });
    return this.transition(
      client,
      operation,
      'FAILED',
      `WITH retried AS (DELETE FROM batch.outcomes WHERE operation_id = $1 AND status = 'FAILED' RETURNING operation_id, client_id, target, attempts),
       counted AS (
         INSERT INTO batch.operation_counts (client_id, target, status, minute, added, removed)
         SELECT client_id, target, 'PENDING', date_trunc('minute', now()), 1, 0 FROM retried)
       INSERT INTO batch.deferred (id, client_id, target, priority, attempts, bytes, shape, identity, idempotency_key, label)
       SELECT r.operation_id, r.client_id, r.target, o.priority, r.attempts, coalesce(pg_column_size(o.row_values), 0),
              coalesce(o.shape, batch.shape_of(o.type, o.row_values, o.row_key, o.conflict_key)), coalesce(o.identity, ''),
              o.idempotency_key, o.label
         FROM retried r JOIN batch.operations o ON o.id = r.operation_id RETURNING id`,
    );
  }

  /**
   * Runs `change` (one statement on the operation with id $1, returning a row when it applied) on an operation the
   * client owns (found by findOwned), from status `from`, once its target is locked: a chunk that read the operation
   * has committed, and no chunk reads it until this commits.
   */
  private async transition(
    client: AuthenticatedClient,
    { id, target }: OperationRow,
    from: OperationStatus,
    change: string,
  ): Promise<IGetBatchOperationResponse> {
    const changed = await this.db.transaction(async (tx) => {
      await lockTargets(tx, [target]);
      return (await tx.query(change, [id])).rows;
    });
    const current = await this.findOwned(client, id);
    if (changed.length === 0 && current.status === from)
      throw new BatchError('CONFLICT', `Operation ${id} is being applied in its target's database`, { status: from });
    if (changed.length === 0)
      throw new BatchError('CONFLICT', `Operation ${id} is ${current.status}, not ${from}`, { status: current.status });
    return toResponse(current);
  }

  private async findOwned(client: AuthenticatedClient, id: string): Promise<OperationRow> {
    if (!/^\d{1,18}$/.test(id)) throw new BatchError('NOT_FOUND', `No operation ${JSON.stringify(id).slice(0, 40)}`);
    const [row] = await this.db.query<OperationRow>('SELECT * FROM batch.operation_states WHERE id = $1', [id]);
    if (!row) throw new BatchError('NOT_FOUND', `No operation ${id}`);
    if (!client.admin && row.client_id !== client.id)
      throw new BatchError('FORBIDDEN', `Operation ${id} belongs to another client`);
    return row;
  }
}

export function toResponse(row: OperationRow): IGetBatchOperationResponse {
  return {
    id: row.id,
    target: row.target,
    type: row.type,
    values: row.row_values,
    key: row.row_key,
    conflictKey: row.conflict_key,
    idempotencyKey: row.idempotency_key,
    label: row.label,
    priority: row.priority,
    notBefore: row.not_before?.toISOString() ?? null,
    status: row.status,
    attempts: row.attempts,
    rowsAffected: row.rows_affected,
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? '' },
    executionId: row.chunk_id,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    settledAt: row.settled_at?.toISOString() ?? null,
  };
}
