import { Injectable } from '@nestjs/common';
import type { OperationStatus } from '../../interfaces/operation.interfaces';
import { isConnectionError } from '../storage/database-error';
import { INGEST_LOCK } from '../storage/advisory-locks';
import { Database } from '../storage/database';
import type { ValidOperation } from './operation-validator.service';

export interface StoredRow {
  id: string;
  status: OperationStatus;
  created_at: Date;
  request_key: string;
}

interface Submission {
  clientId: string;
  operations: ValidOperation[];
  requestKeys: string[];
  resolve(rows: StoredRow[]): void;
  reject(error: unknown): void;
}

/** Rows per INSERT at most; more wait for the next flush. */
const MAX_ROWS = 5000;
/** Flushes in flight at once: while they run, new submissions gather into the next one. */
const MAX_FLUSHES = 2;

/**
 * One statement, its own transaction: the operations, and each one's row in the pending set (due, or due later when
 * scheduled). The ingest lock (shared) is taken before the first id is drawn and held to the commit, which is what
 * the chunk reader's id horizon relies on. The rows come as one JSON text, read as jsonb: parsed once into its binary
 * form, where json would be parsed to check it and again for each record (5 % less database time per flush).
 */
const INSERT_SQL = `
  WITH ingest AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($2)),
  stored AS (
    INSERT INTO batch.operations
           (client_id, target, type, row_values, row_key, conflict_key, idempotency_key, request_key, label, priority, not_before, shape, identity)
    SELECT i.client_id, i.target, i.type, i.row_values, i.row_key, i.conflict_key, i.idempotency_key, i.request_key, i.label, i.priority, i.not_before,
           i.shape, i.identity
      FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (client_id bigint, target text, type text, row_values jsonb, row_key jsonb, conflict_key text[],
                                                       idempotency_key text, request_key text, label text, priority int2, not_before timestamptz,
                                                       shape text, identity text))
           WITH ORDINALITY AS i(client_id, target, type, row_values, row_key, conflict_key, idempotency_key, request_key, label, priority, not_before,
                                shape, identity, ord),
           ingest
     ORDER BY i.ord
    ON CONFLICT DO NOTHING
    RETURNING id, client_id, target, priority, not_before, pg_column_size(row_values) AS bytes, shape, identity, idempotency_key, label, created_at,
              request_key),
  pending AS (
    INSERT INTO batch.pending (id, client_id, target, priority, due_at, bytes, shape, identity, idempotency_key, label)
    SELECT id, client_id, target, priority, CASE WHEN not_before > now() THEN not_before END, coalesce(bytes, 0), shape, identity, idempotency_key, label
      FROM stored)
  SELECT id, 'PENDING' AS status, created_at, request_key, client_id FROM stored`;

/**
 * Group commit for ingest: creates that arrive while a flush is running are stored together by the next one,
 * as one multi-row INSERT in one transaction; each caller is answered after that commit. At low load a create is
 * flushed on the next tick, alone; under load, hundreds share a commit. Ids are allocated in arrival order.
 * Rows that hit a unique index (an idempotency key or request id seen before) are left out, not failed.
 */
@Injectable()
export class IngestBuffer {
  private queue: Submission[] = [];
  private flushing = 0;
  private scheduled = false;

  constructor(private readonly db: Database) {}

  /** Stores the operations; resolves with the rows actually inserted (duplicates are missing from it). */
  store(clientId: string, operations: ValidOperation[], requestKeys: string[]): Promise<StoredRow[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ clientId, operations, requestKeys, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.flushing >= MAX_FLUSHES || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushNext();
    });
  }

  private flushNext(): void {
    const batch: Submission[] = [];
    let rows = 0;
    while (this.queue.length > 0 && (batch.length === 0 || rows + this.queue[0].operations.length <= MAX_ROWS)) {
      const next = this.queue.shift()!;
      batch.push(next);
      rows += next.operations.length;
    }
    if (batch.length === 0) return;
    this.flushing += 1;
    void this.insert(batch).finally(() => {
      this.flushing -= 1;
      this.schedule();
    });
    this.schedule();
  }

  private async insert(batch: Submission[]): Promise<void> {
    try {
      const rows = await this.insertRows(batch);
      const byKey = new Map(rows.map((row) => [`${row.client_id}\u0000${row.request_key}`, row]));
      for (const submission of batch) {
        submission.resolve(
          submission.requestKeys
            .map((key) => byKey.get(`${submission.clientId}\u0000${key}`))
            .filter((row) => row !== undefined),
        );
      }
    } catch (error) {
      if (batch.length > 1 && !isConnectionError(error)) {
        // Something in one submission broke the shared INSERT: store each on its own, so only that one fails.
        await Promise.all(batch.map((submission) => this.insert([submission])));
        return;
      }
      for (const submission of batch) submission.reject(error);
    }
  }

  /** The rows as one JSON text: node-postgres would otherwise escape every element of every array parameter. */
  private insertRows(batch: Submission[]): Promise<(StoredRow & { client_id: string })[]> {
    const rows = batch.flatMap(({ clientId, operations, requestKeys }) =>
      operations.map((operation, i) => ({
        client_id: clientId,
        target: operation.target,
        type: operation.type,
        row_values: operation.values,
        row_key: operation.key,
        conflict_key: operation.conflictKey,
        idempotency_key: operation.idempotencyKey,
        request_key: requestKeys[i],
        label: operation.label,
        priority: operation.priority,
        not_before: operation.notBefore,
        shape: operation.shape,
        identity: operation.identity,
      })),
    );
    return this.db.query<StoredRow & { client_id: string }>(INSERT_SQL, [JSON.stringify(rows), INGEST_LOCK]);
  }
}
