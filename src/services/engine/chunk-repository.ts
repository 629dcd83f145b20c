import { Injectable } from '@nestjs/common';
import { hostname } from 'node:os';
import type { PoolClient } from 'pg';
import type { ClaimedOperation, OperationOutcome } from '../../interfaces/chunk.interfaces';
import { COUNTERS, emptyCounts, StepCounts } from '../step-counts';
import { SETTLED_ROUTING_KEY_PREFIX } from '../../interfaces/operation.interfaces';
import { Database, numberArray } from '../storage/database';
import { eachOperation, idBitmap, idRuns, lastId, paramsOfRuns } from '../storage/id-runs';
import { publicReason } from '../storage/database-error';
import { lockTargets } from '../storage/advisory-locks';
import { missedIds, settledMessages } from '../outbox/settled-events';
import { LOCKED_ELSEWHERE } from '../storage/table-locks';

/** A statement of a chunk (Spring Batch's step), as the job repository records it. */
export interface StepRecord extends StepCounts {
  name: string;
  target: string;
  type: string;
  status: 'COMPLETED' | 'FAILED';
  exitMessage: string | null;
  startedAt: Date;
  endedAt: Date;
}

/** A chunk that committed: the outcome of every operation it claimed, and its statements. */
export interface ChunkRecord {
  startedAt: Date;
  read: number;
  /** Operations the planner refused before any statement (their table is gone). */
  filtered: number;
  steps: StepRecord[];
  outcomes: OperationOutcome[];
}

export const WORKER = `${hostname()}:${process.pid}`;

/** A hold's chunk size when it does not cut the target's chunks (batch.holds.chunk_size is never null). */
const MAX_CHUNK_SIZE = 2 ** 31 - 1;

/**
 * Two CTEs that move each stream named in `moved` (target, priority, last_id) past its last id, and delete its runs
 * recorded at ingest that it passed: what a chunk took and what a hold set apart leave its stream the same way.
 */
const streamsPassed = (moved: string) => `
  passed AS (
    UPDATE batch.streams s SET taken_through = greatest(s.taken_through, m.last_id)
      FROM ${moved} m WHERE s.target = m.target AND s.priority = m.priority),
  runs_passed AS (
    DELETE FROM batch.stream_runs r USING ${moved} m
     WHERE r.target = m.target AND r.priority = m.priority AND r.last_id <= m.last_id)`;

/**
 * Everything a chunk records, in its own transaction and one statement (data-modifying CTEs all run): what it took
 * (its streams' positions move past the operations it read from them, and the runs recorded of those go; those it read
 * from the deferred set leave it),
 * the chunk (ended now), its steps, each operation's outcome, which clients it settled for, and their
 * notifications (settled-events.ts). Operations that completed on their first attempt (nearly all of them) are recorded
 * as runs of consecutive ids (batch.settled_runs), those that affected no row marked in their run's bitmap (a stream
 * that deletes rows already gone has thousands in a chunk); every other outcome as a row of its own. The
 * counts: PENDING less every operation settled, COMPLETED more by those in runs (the outcome rows' trigger counts
 * theirs). The chunk and its steps travel as JSON named like their columns; the outcome rows as array literals,
 * which PostgreSQL reads faster than JSON records and node-postgres does not escape; each notification as what it
 * reports, its text made when it is sent.
 *
 * $1 chunk, $2 steps (JSON); $3 the targets (others refer to them by index); outcome rows: $4 id, $5 client,
 * $6 target, $7 attempts before, $8 rows affected (NULL when it failed), $9 the failures' codes and messages (JSON);
 * runs: $10 first and $11 last ids; counts: $12 client, $13 target, $14 completed in runs, $15 settled; $16 the routing
 * key's prefix; the notifications (settledMessages): $17 client, $18 runs, $19 exceptions, $20 size; the streams
 * taken from: $21 target, $22 priority, $23 last id taken; $24 the ids taken from the deferred set; $25 each run's
 * operations that affected no row (idBitmap, NULL for none).
 */
export const RECORD_CHUNK_SQL = `
  WITH chunk AS (
    INSERT INTO batch.chunks (status, exit_message, worker, read_count, write_count, filter_count, read_skip_count, process_skip_count,
                                  write_skip_count, commit_count, rollback_count, started_at, ended_at)
    SELECT 'COMPLETED', exit_message, worker, read_count, write_count, filter_count, read_skip_count, process_skip_count, write_skip_count,
           commit_count, rollback_count, started_at, clock_timestamp()
      FROM json_populate_record(NULL::batch.chunks, $1::json)
    RETURNING id, ended_at),
  steps AS (
    INSERT INTO batch.chunk_steps (chunk_id, name, target, type, status, exit_message, read_count, write_count, filter_count,
                                       read_skip_count, process_skip_count, write_skip_count, commit_count, rollback_count, started_at, ended_at)
    SELECT e.id, s.name, s.target, s.type, s.status, s.exit_message, s.read_count, s.write_count, s.filter_count, s.read_skip_count,
           s.process_skip_count, s.write_skip_count, s.commit_count, s.rollback_count, s.started_at, s.ended_at
      FROM chunk e, json_populate_recordset(NULL::batch.chunk_steps, $2::json) s),
  operations AS (
    SELECT * FROM unnest($4::bigint[], $5::bigint[], $6::int[], $7::int[], $8::int[]) AS o(id, client_id, target, attempts, rows_affected)),
  settled AS (
    INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, rows_affected, error_code, error_message, chunk_id, settled_at)
    SELECT o.id, o.client_id, ($3::text[])[o.target], CASE WHEN f.id IS NULL THEN 'COMPLETED' ELSE 'FAILED' END, o.attempts + 1,
           o.rows_affected, f.code, f.message, e.id, e.ended_at
      FROM chunk e, operations o LEFT JOIN json_to_recordset($9::json) AS f(id bigint, code text, message text) ON f.id = o.id),
  runs AS (
    INSERT INTO batch.settled_runs (first_id, last_id, no_rows, chunk_id, settled_at)
    SELECT r.first_id, r.last_id, decode(r.no_rows, 'hex'), e.id, e.ended_at
      FROM chunk e, unnest($10::bigint[], $11::bigint[], $25::text[]) AS r(first_id, last_id, no_rows)),
  counted AS (
    INSERT INTO batch.operation_counts (client_id, target, status, minute, added, removed)
    SELECT c.client_id, ($3::text[])[c.target], n.status, date_trunc('minute', now()), n.added, n.removed
      FROM unnest($12::bigint[], $13::int[], $14::int[], $15::int[]) AS c(client_id, target, completed, settled)
     CROSS JOIN LATERAL (VALUES ('COMPLETED', c.completed, 0), ('PENDING', 0, c.settled)) AS n(status, added, removed)
     WHERE n.added + n.removed > 0),
  clients AS (
    INSERT INTO batch.chunk_clients (client_id, chunk_id)
    SELECT DISTINCT m.client_id, e.id FROM chunk e, unnest($17::bigint[]) AS m(client_id)),
  notified AS (
    INSERT INTO batch.outbox (routing_key, chunk_id, client_id, runs, exceptions, size)
    SELECT $16 || c.name, e.id, c.id, m.runs, m.exceptions, m.size
      FROM chunk e, unnest($17::bigint[], $18::jsonb[], $19::jsonb[], $20::int[]) AS m(client_id, runs, exceptions, size)
      JOIN batch.clients c ON c.id = m.client_id),
  taken AS (
    SELECT ($3::text[])[t.target] AS target, t.priority, t.last_id
      FROM unnest($21::int[], $22::int[], $23::bigint[]) AS t(target, priority, last_id)),
  ${streamsPassed('taken')},
  undeferred AS (DELETE FROM batch.deferred WHERE id = ANY ($24::bigint[]))
  SELECT id FROM chunk`;

/**
 * Completed on its first attempt, each of its operations affecting one row or, where missed, none: recorded in a run,
 * not in a row of its own.
 */
function inRun(outcome: OperationOutcome): boolean {
  const { status, rowsAffected, operation } = outcome;
  return status === 'COMPLETED' && (rowsAffected === 1 || rowsAffected === 0) && operation.attempts === 0;
}

/** The parameters of RECORD_CHUNK_SQL for a chunk. */
export function recordChunkParams(record: ChunkRecord): unknown[] {
  const failed = record.outcomes.filter((o) => o.status === 'FAILED');
  const missed = missedIds(record.outcomes);
  const settled = roundsAsRuns(record.outcomes);
  const { targetIndex, inRuns, rows, counts, streams, deferred } = sortOutcomes(settled);
  const messages = settledMessages(settled, missed);
  const runs = idRuns(inRuns);
  return [
    ...chunkRows(record, failed.length),
    [...targetIndex.keys()],
    numberArray(rows.map((o) => o.operation.id)),
    numberArray(rows.map((o) => o.operation.clientId)),
    numberArray(rows.map((o) => targetIndex.get(o.operation.target)!)),
    numberArray(rows.map((o) => o.operation.attempts)),
    numberArray(rows.map((o) => o.rowsAffected)),
    JSON.stringify(failed.map((o) => ({ id: o.operation.id, code: o.error!.code, message: o.error!.message }))),
    ...paramsOfRuns(runs),
    numberArray([...counts.values()].map((c) => c.clientId)),
    numberArray([...counts.values()].map((c) => c.target)),
    numberArray([...counts.values()].map((c) => c.completed)),
    numberArray([...counts.values()].map((c) => c.settled)),
    SETTLED_ROUTING_KEY_PREFIX,
    messages.map((m) => m.clientId),
    messages.map((m) => m.runs),
    messages.map((m) => m.exceptions),
    messages.map((m) => m.size),
    numberArray([...streams.values()].map((s) => s.target)),
    numberArray([...streams.values()].map((s) => s.priority)),
    numberArray([...streams.values()].map((s) => s.last)),
    numberArray(deferred),
    runs.map(([first, last]) => idBitmap(first, last, missed)),
  ];
}

/** The chunk's row and its steps' rows, as JSON named like their columns. */
function chunkRows({ startedAt, read, filtered, steps }: ChunkRecord, failed: number): [string, string] {
  const totals = emptyCounts();
  for (const step of steps) for (const counter of COUNTERS) totals[counter] += step[counter];
  const chunk = {
    exit_message: failed > 0 ? `${failed} of ${read} operations failed` : null,
    worker: WORKER,
    ...columns({ ...totals, readCount: read, processSkipCount: filtered, commitCount: 1 }),
    started_at: startedAt,
  };
  const stepRows = steps.map((step) => ({
    name: step.name,
    target: step.target,
    type: step.type,
    status: step.status,
    exit_message: step.exitMessage,
    ...columns(step),
    started_at: step.startedAt,
    ended_at: step.endedAt,
  }));
  return [JSON.stringify(chunk), JSON.stringify(stepRows)];
}

/**
 * The chunk's outcomes sorted for its record: its targets numbered, the completions to record in runs (inRun) apart
 * from the outcomes that need a row, the counts by client and target, the last id read of each stream, and the
 * operations taken from the deferred set.
 */
function sortOutcomes(settled: OperationOutcome[]) {
  const targetIndex = new Map<string, number>();
  const inRuns: ClaimedOperation[] = [];
  const rows: OperationOutcome[] = [];
  const counts = new Map<string, { clientId: string; target: number; completed: number; settled: number }>();
  const streams = new Map<string, { target: number; priority: number; last: string }>(); // the last id read of each
  const deferred: string[] = [];
  for (const outcome of settled) {
    const { id, count: operations, clientId, target, priority } = outcome.operation;
    let index = targetIndex.get(target);
    if (index === undefined) targetIndex.set(target, (index = targetIndex.size + 1));
    const key = `${clientId} ${index}`;
    let count = counts.get(key);
    if (!count) counts.set(key, (count = { clientId, target: index, completed: 0, settled: 0 }));
    count.settled += operations;
    if (outcome.operation.deferred) deferred.push(id);
    else {
      const last = lastId(outcome.operation);
      const stream = streams.get(`${index} ${priority}`);
      if (!stream) streams.set(`${index} ${priority}`, { target: index, priority, last });
      else if (isAfter(last, stream.last)) stream.last = last;
    }
    if (!inRun(outcome)) {
      rows.push(outcome);
      continue;
    }
    inRuns.push(outcome.operation);
    count.completed += operations;
  }
  return { targetIndex, inRuns, rows, counts, streams, deferred };
}

/**
 * Rounds to record in runs (inRun), merged stream by stream into runs of consecutive ids: a stream's rounds (the k-th
 * operations of its rows) interleave, and together they are a few runs, which the record and the notifications then
 * take a run at a time instead of an operation at a time. Their bytes and chars are shared out by count; which of
 * their operations affected no row, the chunk's missedIds tell.
 */
function roundsAsRuns(outcomes: OperationOutcome[]): OperationOutcome[] {
  const streams = new Map<string, { first: OperationOutcome; ids: string[]; bytes: number; chars: number }>();
  const others: OperationOutcome[] = [];
  for (const outcome of outcomes) {
    const { ids, clientId, target, priority, bytes, chars } = outcome.operation;
    if (!ids || !inRun(outcome)) {
      others.push(outcome);
      continue;
    }
    const key = `${clientId} ${target} ${priority}`;
    let stream = streams.get(key);
    if (!stream) streams.set(key, (stream = { first: outcome, ids: [], bytes: 0, chars: 0 }));
    for (const id of ids) stream.ids.push(id);
    stream.bytes += bytes;
    stream.chars += chars;
  }
  for (const { first, ids, bytes, chars } of streams.values()) {
    for (const [id, last] of idRuns(ids)) {
      const count = Number(BigInt(last) - BigInt(id)) + 1;
      const share = (total: number) => (total * count) / ids.length;
      const operation = { ...first.operation, id, count, ids: undefined, bytes: share(bytes), chars: share(chars) };
      others.push({ ...first, operation });
    }
  }
  return others;
}

/** Ids are decimal strings: the longer is the larger. */
function isAfter(id: string, other: string): boolean {
  return id.length > other.length || (id.length === other.length && id > other);
}

/** Spring Batch's counters as the columns they are stored in. */
function columns(counts: StepCounts): Record<string, number> {
  return Object.fromEntries(
    COUNTERS.map((counter) => [counter.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), counts[counter]]),
  );
}

/**
 * The queue's repository, after Spring Batch's job repository: every chunk, its steps and counters, its operations'
 * outcomes and notifications; and the chunks that failed as a whole, with what that means for their operations.
 */
@Injectable()
export class ChunkRepository {
  constructor(private readonly db: Database) {}

  /** Records a chunk in its transaction; returns its id. */
  async recordChunk(tx: PoolClient, chunk: ChunkRecord): Promise<string> {
    const { rows } = await tx.query<{ id: string }>({
      name: 'chunk-record',
      text: RECORD_CHUNK_SQL,
      values: recordChunkParams(chunk),
    });
    return rows[0].id;
  }

  /**
   * A chunk that failed as a whole: each of its operations still pending counts the failure in the deferred set (those
   * it read from their stream are set apart there, and the stream's position moves past them), and each of its targets
   * is held back for `holdMs`, then claimed in chunks of the given size (the retry policy's). Its targets are locked
   * first, so that what it reads is what other workers committed meanwhile.
   */
  async holdBack(claimed: ClaimedOperation[], chunkSizes: Map<string, number>, holdMs: number): Promise<void> {
    const chunk = claimed.flatMap((op) => (op.ids ? eachOperation(op) : [op])); // runs, and a round's operations
    await this.db.transaction(async (tx) => {
      await lockTargets(tx, [...chunkSizes.keys()]);
      await tx.query(
        `WITH chunk AS (
           SELECT id, c.deferred FROM unnest($1::bigint[], $2::int[], $3::bool[]) AS c(first_id, count, deferred),
                  generate_series(c.first_id, c.first_id + c.count - 1) AS id),
         counted AS (UPDATE batch.deferred d SET failures = d.failures + 1 FROM chunk c WHERE c.deferred AND d.id = c.id),
         set_apart AS (
           INSERT INTO batch.deferred (id, client_id, target, priority, failures, bytes, shape, identity, idempotency_key, label)
           SELECT o.id, o.client_id, o.target, o.priority, 1, coalesce(pg_column_size(o.row_values), 0), o.shape, o.identity,
                  o.idempotency_key, o.label
             FROM chunk c JOIN batch.operations o ON o.id = c.id JOIN batch.streams s ON s.target = o.target AND s.priority = o.priority
            WHERE NOT c.deferred AND o.id > s.taken_through AND NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id)
           RETURNING id, target, priority),
         moved AS (SELECT target, priority, max(id) AS last_id FROM set_apart GROUP BY 1, 2),
         ${streamsPassed('moved')}
         INSERT INTO batch.holds (target, until, chunk_size)
         SELECT target, now() + $6 * interval '1 millisecond', size FROM unnest($4::text[], $5::int[]) AS h(target, size)
         ON CONFLICT (target) DO UPDATE SET until = EXCLUDED.until, chunk_size = EXCLUDED.chunk_size, locked_relation = NULL`,
        [
          chunk.map((op) => op.id),
          chunk.map((op) => op.count),
          chunk.map((op) => op.deferred),
          [...chunkSizes.keys()],
          [...chunkSizes.values()],
          holdMs,
        ],
      );
    });
  }

  /**
   * Targets whose statements waited past the lock timeout for a row locked elsewhere: left out of claims for
   * `delayMs(deferrals)`, deferrals counting the times in a row (a hold that ended over a minute ago starts again at
   * one). Their operations count no failure and keep their places. Where another transaction holds or waits for a
   * lock on the target's table that its writes wait behind (a migration's, say), the hold remembers the table, and the
   * chunk reader takes the target again as soon as that lock is gone (TARGETS_SQL). Returns the delay.
   */
  async deferTargets(targets: string[], delayMs: (deferrals: number) => number): Promise<number> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ deferrals: number }>(
        `INSERT INTO batch.holds (target, until, chunk_size, deferrals, locked_relation)
         SELECT target, now(), $2, 1,
                (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = split_part(target, '.', 1) AND c.relname = substr(target, length(split_part(target, '.', 1)) + 2)
                    AND ${LOCKED_ELSEWHERE('c.oid')})
           FROM unnest($1::text[]) AS target
         ON CONFLICT (target) DO UPDATE
            SET deferrals = CASE WHEN batch.holds.until < now() - interval '1 minute' THEN 1 ELSE batch.holds.deferrals + 1 END,
                locked_relation = EXCLUDED.locked_relation
         RETURNING deferrals`,
        [targets, MAX_CHUNK_SIZE],
      );
      const ms = delayMs(Math.max(...rows.map((row) => row.deferrals)));
      await tx.query(`UPDATE batch.holds SET until = now() + $2 * interval '1 millisecond' WHERE target = ANY ($1)`, [
        targets,
        ms,
      ]);
      return ms;
    });
  }

  /**
   * An operation the engine gives up on, as it is once its target is locked (in the deferred set or still in its
   * stream); null when it is no longer pending (cancelled meanwhile). Its target goes back to whole chunks. Recording
   * its outcome takes it (recordChunk).
   */
  async takeAlone(tx: PoolClient, operation: ClaimedOperation): Promise<ClaimedOperation | null> {
    await lockTargets(tx, [operation.target]);
    const { rows } = await tx.query<{ pending: boolean; deferred: boolean }>(
      `WITH released AS (DELETE FROM batch.holds WHERE target = $2)
       SELECT EXISTS (SELECT FROM batch.operation_states WHERE id = $1 AND status = 'PENDING') AS pending,
              EXISTS (SELECT FROM batch.deferred WHERE id = $1) AS deferred`,
      [operation.id, operation.target],
    );
    return rows[0].pending ? { ...operation, deferred: rows[0].deferred } : null;
  }

  /** A chunk that failed as a whole: visible in /api/executions (to admins) while its operations wait. */
  async recordFailure(startedAt: Date, read: number, error: unknown, next: string): Promise<string> {
    const [{ id }] = await this.db.query<{ id: string }>(
      `INSERT INTO batch.chunks (status, exit_message, worker, read_count, rollback_count, started_at, ended_at)
       VALUES ('FAILED', $1, $2, $3, 1, $4, clock_timestamp()) RETURNING id`,
      [`rolled back (${next}): ${publicReason(error)}`, WORKER, read, startedAt],
    );
    return id;
  }
}
