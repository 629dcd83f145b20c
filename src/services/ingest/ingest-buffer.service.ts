import { Injectable } from '@nestjs/common';
import { types } from 'pg';
import type { OperationStatus } from '../../interfaces/operation.interfaces';
import { isConnectionError } from '../storage/database-error';
import { INGEST_LOCK } from '../storage/advisory-locks';
import { Database, NamedStatement } from '../storage/database';
import type { ValidOperation } from './operation-validator.service';
import { stringifyJson } from '../exact-json';

export interface StoredRow {
  id: string;
  status: OperationStatus;
  /** ISO-8601, as responses give it. */
  createdAt: string;
}

interface Submission {
  clientId: string;
  /** The request the operations came in (the RPC message's id): a request is stored once. */
  requestId: string;
  operations: ValidOperation[];
  resolve(rows: (StoredRow | null)[]): void;
  reject(error: unknown): void;
}

/**
 * Rows per INSERT at most; more wait for the next flush. A bulk request is a flush of its own: merging several gained
 * nothing (each commits a thousand rows already) and held the first one's reply back until the last was stored, which
 * left a caller with a few requests in flight waiting instead of sending.
 * Single creates still share flushes, hundreds at a time under load.
 */
const MAX_ROWS = 1000;
/**
 * Flushes in flight at once (connections of the pool). Of those, one at a time gathers what is waiting (fewer rows
 * than MAX_ROWS); the others start only when what waits fills a flush (a bulk request of 1,000 operations, say). So
 * single creates gather into one flush at a time: four at once stored a few creates each under load, and each flush's
 * fixed costs (the plan's start, the commit) were shared by few, while bulk requests are stored four at a time.
 */
const MAX_FLUSHES = 4;

/**
 * One statement, its own transaction: each request recorded once (batch.requests; a request recorded before is left
 * out, operations and all), and its operations, which join their stream (target and priority: a row of batch.streams
 * for a stream new to it) and count as PENDING; one with a not-before time goes into the deferred set, due then.
 * Inserts and upserts of one stream, client and shape with consecutive ids are recorded as a run (batch.stream_runs),
 * which the claim reads instead of each of them. Inserts' values are also written typed, to their target's stage
 * (batch.type_inserts; `typed` is named in the answer's WHERE only so that it runs).
 * An operation whose idempotency key its client used before is left out (the conflict clause goes only into a flush
 * that has keys: checking it costs every operation, with keys or without). The ingest lock (shared) is taken before the
 * first id is drawn and held to the commit, which is what the chunk reader's id horizon relies on. The ids are drawn
 * in the order of the flush, before the request is recorded with their range (what a redelivery reads).
 *
 * The flush comes as one JSON text, read as jsonb (parsed once into its binary form, where json would be parsed to
 * check it and again for each record): its requests, each with its client, its id and its operations, which leave
 * out what they do not have (a field left out reads as null). Naming every field of every operation, client and
 * request included, made the text twice as long, and sending and reading it cost both sides. Each row stored is answered with its request's place in the flush and its own in the
 * request.
 */
const insertSql = (idempotencyKeys: boolean) => `
  WITH ingest AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared($2)),
  submitted AS MATERIALIZED (
    SELECT * FROM ROWS FROM (jsonb_to_recordset($1::jsonb) AS (client_id bigint, request_id text, operations jsonb))
                  WITH ORDINALITY AS r(client_id, request_id, operations, submission)),
  input AS MATERIALIZED (
    SELECT nextval('batch.operations_id_seq') AS id, i.*
      FROM (SELECT r.submission, r.client_id, r.request_id, o.place - 1 AS request_index, o.target, o.type, o.row_values, o.row_key,
                   o.conflict_key, o.idempotency_key, o.label, coalesce(o.priority, 0) AS priority, o.not_before, o.shape, o.identity
              FROM ingest, submitted r,
                   ROWS FROM (jsonb_to_recordset(r.operations) AS (target text, type text, row_values jsonb, row_key jsonb, conflict_key text[],
                                                                   idempotency_key text, label text, priority int2, not_before timestamptz,
                                                                   shape text, identity text))
                     WITH ORDINALITY AS o(target, type, row_values, row_key, conflict_key, idempotency_key, label, priority, not_before, shape,
                                          identity, place)
             ORDER BY r.submission, o.place) i),
  requests AS (
    INSERT INTO batch.requests (client_id, request_id, first_id, last_id)
    SELECT client_id, request_id, min(id), max(id) FROM input GROUP BY client_id, request_id
    ON CONFLICT (client_id, request_id) DO NOTHING
    RETURNING id, client_id, request_id),
  stored AS (
    INSERT INTO batch.operations
           (id, client_id, target, type, row_values, row_key, conflict_key, idempotency_key, request_ref, request_index, label, priority,
            not_before, shape, identity)
    SELECT i.id, i.client_id, i.target, i.type, i.row_values, i.row_key, i.conflict_key, i.idempotency_key, r.id, i.request_index, i.label,
           i.priority, i.not_before, i.shape, i.identity
      FROM input i JOIN requests r ON r.client_id = i.client_id AND r.request_id = i.request_id
     ORDER BY i.id
    ${idempotencyKeys ? 'ON CONFLICT (client_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING' : ''}
    RETURNING id, client_id, target, type, priority, not_before, row_values, pg_column_size(row_values) AS bytes, shape, identity,
              idempotency_key, label, created_at, request_ref, request_index),
  typed AS (
    SELECT batch.type_inserts(target, shape, array_agg(id), array_agg(row_values)) AS rows
      FROM stored WHERE type = 'insert' GROUP BY target, shape),
  deferred AS (
    INSERT INTO batch.deferred (id, client_id, target, priority, due_at, bytes, shape, identity, idempotency_key, label)
    SELECT id, client_id, target, priority, CASE WHEN not_before > now() THEN not_before END, coalesce(bytes, 0), shape, identity, idempotency_key, label
      FROM stored WHERE not_before IS NOT NULL),
  runs AS (
    INSERT INTO batch.stream_runs (target, priority, last_id, first_id, client_id, shape, bytes, chars)
    SELECT target, priority, max(id), min(id), client_id, shape, sum(bytes), sum(chars)
      FROM (SELECT id, target, priority, client_id, shape, coalesce(bytes, 0) AS bytes,
                   coalesce(length(to_json(idempotency_key)::text), 4) + coalesce(length(to_json(label)::text), 4) AS chars,
                   id - row_number() OVER (PARTITION BY target, priority, client_id, shape ORDER BY id) AS run
              FROM stored WHERE not_before IS NULL AND type IN ('insert', 'upsert') AND shape IS NOT NULL) s
     GROUP BY target, priority, client_id, shape, run),
  streams AS (
    INSERT INTO batch.streams (target, priority)
    SELECT s.target, s.priority FROM (SELECT DISTINCT target, priority FROM stored) s
     WHERE NOT EXISTS (SELECT FROM batch.streams x WHERE x.target = s.target AND x.priority = s.priority)
    ON CONFLICT DO NOTHING),
  counted AS (
    INSERT INTO batch.operation_counts (client_id, target, status, minute, added, removed)
    SELECT client_id, target, 'PENDING', date_trunc('minute', now()), count(*), 0 FROM stored GROUP BY 1, 2)
  SELECT s.id, s.created_at::text AS created_at, i.submission::int AS submission, s.request_index
    FROM stored s JOIN requests r ON r.id = s.request_ref JOIN submitted i ON i.client_id = r.client_id AND i.request_id = r.request_id
   WHERE (SELECT count(rows) FROM typed) >= 0`;

const INSERT: NamedStatement = { name: 'ingest-flush', text: insertSql(false) };
const INSERT_WITH_KEYS: NamedStatement = { name: 'ingest-flush-with-keys', text: insertSql(true) };

/** timestamptz as node-postgres reads it, for the one creation time that a flush's operations share. */
const parseTimestamp = types.getTypeParser(types.builtins.TIMESTAMPTZ) as (text: string) => Date;

/**
 * Group commit for ingest: creates that arrive while a flush is running are stored together by the next one,
 * as one multi-row INSERT in one transaction; each caller is answered after that commit. At low load a create is
 * flushed on the next tick, alone; under load, hundreds share a commit. Ids are allocated in arrival order.
 * Rows that hit a unique index (an idempotency key or request id seen before) are left out, not failed.
 */
@Injectable()
export class IngestBuffer {
  private queue: Submission[] = [];
  private queuedRows = 0;
  private flushing = 0;
  /** Flushes running with fewer rows than MAX_ROWS. */
  private gathering = 0;
  private scheduled = false;

  constructor(private readonly db: Database) {}

  /**
   * Stores the operations of a request; resolves with each one's row, or null where nothing was stored: all of them
   * when the request was stored before, one whose idempotency key its client used before.
   */
  store(clientId: string, requestId: string, operations: ValidOperation[]): Promise<(StoredRow | null)[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ clientId, requestId, operations, resolve, reject });
      this.queuedRows += operations.length;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.flushing >= MAX_FLUSHES || this.queue.length === 0) return;
    if (this.gathering > 0 && this.queuedRows < MAX_ROWS) return; // gathers until the running gathering flush ends
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushNext();
    });
  }

  private flushNext(): void {
    const batch: Submission[] = [];
    const waiting: Submission[] = [];
    const requests = new Set<string>();
    let rows = 0;
    let full = false;
    for (const next of this.queue) {
      const request = `${next.clientId}\u0000${next.requestId}`;
      // A request delivered again while its first delivery waits goes in a later flush, which finds it stored.
      full ||= batch.length > 0 && rows + next.operations.length > MAX_ROWS;
      if (full || requests.has(request)) {
        waiting.push(next);
        continue;
      }
      batch.push(next);
      requests.add(request);
      rows += next.operations.length;
    }
    this.queue = waiting;
    this.queuedRows -= rows;
    if (batch.length === 0) return;
    const gathering = rows < MAX_ROWS ? 1 : 0;
    this.flushing += 1;
    this.gathering += gathering;
    void this.insert(batch).finally(() => {
      this.flushing -= 1;
      this.gathering -= gathering;
      this.schedule();
    });
    this.schedule();
  }

  private async insert(batch: Submission[]): Promise<void> {
    try {
      const stored = batch.map((s) => s.operations.map((): StoredRow | null => null));
      let created = { text: '', iso: '' }; // the flush's operations were created at once: read and written once
      for (const { id, created_at, submission, request_index } of await this.insertRows(batch)) {
        if (created_at !== created.text) created = { text: created_at, iso: parseTimestamp(created_at).toISOString() };
        stored[submission - 1][request_index] = { id, status: 'PENDING', createdAt: created.iso };
      }
      batch.forEach((submission, i) => submission.resolve(stored[i]));
    } catch (error) {
      if (batch.length > 1 && !isConnectionError(error)) {
        // Something in one submission broke the shared INSERT: store each on its own, so only that one fails.
        await Promise.all(batch.map((submission) => this.insert([submission])));
        return;
      }
      for (const submission of batch) submission.reject(error);
    }
  }

  /**
   * The flush as one JSON text (node-postgres would otherwise escape every element of every array parameter); a field
   * an operation does not have is left out (undefined), priority 0 included.
   */
  private insertRows(
    batch: Submission[],
  ): Promise<{ id: string; created_at: string; submission: number; request_index: number }[]> {
    const requests = batch.map(({ clientId, requestId, operations }) => ({
      client_id: clientId,
      request_id: requestId,
      operations: operations.map((operation) => ({
        target: operation.target,
        type: operation.type,
        row_values: operation.values ?? undefined,
        row_key: operation.key ?? undefined,
        conflict_key: operation.conflictKey ?? undefined,
        idempotency_key: operation.idempotencyKey ?? undefined,
        label: operation.label ?? undefined,
        priority: operation.priority || undefined,
        not_before: operation.notBefore ?? undefined,
        shape: operation.shape,
        identity: operation.identity,
      })),
    }));
    const keys = batch.some(({ operations }) => operations.some((operation) => operation.idempotencyKey !== null));
    return this.db.query(keys ? INSERT_WITH_KEYS : INSERT, [stringifyJson(requests), INGEST_LOCK]);
  }
}
