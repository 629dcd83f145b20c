import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { AppConfig } from '../../config/app-config';
import { ClaimedOperation } from '../../interfaces/chunk.interfaces';
import { INGEST_LOCK, TARGET_LOCK_SPACE } from '../storage/advisory-locks';
import { LOCKED_ELSEWHERE } from '../storage/table-locks';
import { afterPosition } from '../storage/streams';
import { splitRun } from '../storage/id-runs';
import { CatalogService } from '../storage/catalog.service';
import { keysVersion } from '../ingest/row-identity';
import { databaseOf, MAIN, NamedDatabases } from '../storage/named-databases';

/** Scheduled operations made due per claim at most; more are made due by the next ones. */
const PROMOTIONS = 10_000;

/**
 * The targets with operations to take, each with its first one in order of application (`priority DESC, id`): the
 * first operation after each stream's position (one probe of the stream index per stream), and the first due deferred
 * operation of each target (a loose index scan of the deferred set's due index: one descent per target). Scheduled
 * operations whose time has come are made due first (their targets are among those returned; the claim, a statement
 * of its own, sees them due), and the id horizon is taken (see ChunkClaimer); held targets are left out, but for one
 * held behind a lock on its table that is gone (ChunkRepository.deferTargets), and so are targets of a chunk prepared
 * for another database and not settled yet (PreparedChunks).
 */
export const TARGETS_SQL = `
  WITH RECURSIVE
  promoted AS (
    UPDATE batch.deferred SET due_at = NULL
     WHERE id IN (SELECT id FROM batch.deferred WHERE due_at <= now() ORDER BY due_at LIMIT ${PROMOTIONS} FOR UPDATE SKIP LOCKED)
    RETURNING target, priority, id, failures),
  horizon AS MATERIALIZED (SELECT batch.ingest_horizon(${INGEST_LOCK}) AS id),
  deferred_targets AS (
    (SELECT target FROM batch.deferred WHERE due_at IS NULL ORDER BY target LIMIT 1)
    UNION ALL
    SELECT (SELECT d.target FROM batch.deferred d WHERE d.due_at IS NULL AND d.target > t.target ORDER BY d.target LIMIT 1)
      FROM deferred_targets t WHERE t.target IS NOT NULL),
  heads AS (
    SELECT DISTINCT ON (target) target, priority, id, failures FROM (
      SELECT s.target, s.priority, head.id, 0 AS failures
        FROM batch.streams s, horizon h
        CROSS JOIN LATERAL (SELECT o.id FROM batch.operations o
                             WHERE ${afterPosition('o', 's', 'h.id')} ORDER BY o.target, o.priority, o.id LIMIT 1) head
      UNION ALL
      SELECT t.target, head.priority, head.id, head.failures
        FROM deferred_targets t
        CROSS JOIN LATERAL (SELECT d.priority, d.id, d.failures FROM batch.deferred d
                             WHERE d.due_at IS NULL AND d.target = t.target ORDER BY d.priority DESC, d.id LIMIT 1) head
       WHERE t.target IS NOT NULL
      UNION ALL
      SELECT target, priority, id, failures FROM promoted) due
     ORDER BY target, priority DESC, id)
  SELECT (SELECT id FROM horizon) AS horizon, heads.target, heads.failures, h.chunk_size
    FROM heads LEFT JOIN batch.holds h ON h.target = heads.target
   WHERE (h.until IS NULL OR h.until <= now() OR (h.locked_relation IS NOT NULL AND NOT ${LOCKED_ELSEWHERE('h.locked_relation')}))
     AND NOT EXISTS (SELECT FROM batch.prepared_chunks p WHERE heads.target = ANY (p.targets))
   ORDER BY heads.priority DESC, heads.id`;

/**
 * batch.claim (migration 1765100000000) locks each target it reaches, in the order given, then reads its operations
 * up to the horizon in order of application, until the chunk's count is reached: its streams after their positions,
 * merged with its due deferred operations. Each read is a range of an index that stops at the chunk's limit: its cost
 * does not depend on how many operations are pending or scheduled. Nothing is taken yet: the chunk's record moves the
 * streams on and deletes the deferred operations it took (ChunkRepository).
 *
 * Its rows come as one text, a line each, fields apart by tabs (no field holds either: shapes are JSON, identities
 * hashes and key numbers; a null identity is empty): node-postgres decoded each of 12 fields of each row into a string
 * of its own, most of the worker's time for a chunk of operations that come one a row.
 */
export const CLAIM_TEXT_SQL = `
  SELECT string_agg(concat_ws(E'\\t', id, count, client_id, target_index, priority, attempts, failures, bytes,
                              coalesce(shape, ''), coalesce(identity, ''), chars, deferred, coalesce(ids, '')), E'\\n' ORDER BY n) AS lines
    FROM batch.claim($1::text[], $2::int[], $3::bigint, $4::int, ${TARGET_LOCK_SPACE}, $5::text[], $6::bigint) WITH ORDINALITY
         AS c(id, count, client_id, target_index, priority, attempts, failures, bytes, shape, identity, chars, deferred, ids, n)`;

/**
 * The claimed operations and runs, each target's cut at its share of the byte budget (the budget divided among the
 * targets): a target's rows come in order of application, so what it takes is a prefix, and what is left stays to be
 * claimed again. A run is cut by its average size. Rounds come in order of round, not of id, and only where they fit
 * in the share (batch.claim): never cut.
 */
function withinBudget(lines: string | null, targets: string[], share: number): ClaimedOperation[] {
  const operations: ClaimedOperation[] = [];
  let target = -1;
  let bytes = 0;
  for (const line of lines === null ? [] : lines.split('\n')) {
    const claimed = claimedOf(line, targets);
    const n = targets.indexOf(claimed.target);
    if (n !== target) [target, bytes] = [n, 0];
    else if (bytes >= share && !claimed.ids) continue;
    const [taken] =
      bytes + claimed.bytes > share && !claimed.ids
        ? splitRun(claimed, Math.ceil(((share - bytes) * claimed.count) / claimed.bytes))
        : [claimed];
    bytes += taken.bytes;
    operations.push(taken);
  }
  return operations;
}

/** An operation as a line of CLAIM_TEXT_SQL's text: its target by its place (from 1) in `targets`. */
function claimedOf(line: string, targets: string[]): ClaimedOperation {
  const [id, count, clientId, index, priority, attempts, failures, size, shape, identity, chars, deferred, ids] =
    line.split('\t');
  const claimed: ClaimedOperation = {
    id,
    count: Number(count),
    clientId,
    target: targets[Number(index) - 1],
    shape,
    identity: identity === '' ? null : identity,
    priority: Number(priority),
    attempts: Number(attempts),
    failures: Number(failures),
    bytes: Number(size),
    chars: Number(chars),
    deferred: deferred === 't',
  };
  if (ids !== '') claimed.ids = ids.slice(1, -1).split(',');
  return claimed;
}

/** A chunk's operations as CLAIM_TEXT_SQL gives them, for a prepared chunk to keep (claimedChunk reads them back). */
export function claimedText(chunk: ClaimedOperation[]): { targets: string[]; lines: string } {
  const targets = [...new Set(chunk.map((operation) => operation.target))];
  const lines = chunk.map((op) =>
    [
      op.id,
      op.count,
      op.clientId,
      targets.indexOf(op.target) + 1,
      op.priority,
      op.attempts,
      op.failures,
      op.bytes,
      op.shape,
      op.identity ?? '',
      op.chars,
      op.deferred ? 't' : 'f',
      op.ids ? `{${op.ids.join(',')}}` : '',
    ].join('\t'),
  );
  return { targets, lines: lines.join('\n') };
}

export function claimedChunk(targets: string[], lines: string): ClaimedOperation[] {
  return lines.split('\n').map((line) => claimedOf(line, targets));
}

/**
 * Claims pending operations in the contract's order of application: per target, `priority DESC, id`, due ones only.
 *
 * - The id horizon: ids are allocated before their insert commits, so a larger id can become visible before a
 *   smaller one. The reader reads the sequence, then waits for every ingest transaction that could hold an id
 *   at or below it (they hold INGEST_LOCK shared), and claims only up to that horizon, in a statement of its own
 *   (a snapshot taken after that wait): no smaller id can appear later, so per target nothing is applied ahead
 *   of an operation created before it.
 * - One worker per target: a transaction-scoped advisory lock per target, taken before anything of it is read, so that
 *   what the claim reads is what committed before (a cancel, say); targets locked elsewhere are left.
 * - What a chunk reads is taken when it is recorded, in the same transaction (ChunkRepository.recordChunk): its streams'
 *   positions move past what it took from them, and what it took from the deferred set leaves it.
 * - A chunk applies operations of one database (BATCH_DATABASES; the service's own is `main`): databases take turns,
 *   and one found down is passed over, its operations left pending until it answers again, as is one with a chunk of
 *   this worker's in flight (the poller's lanes).
 * - A target whose first operation was in a chunk that failed as a whole is claimed alone, as many operations as its
 *   hold says (the retry policy's: retried whole, then split); such chunks take turns with the other targets'
 *   chunks, so that those keep flowing while it is worked out.
 */
@Injectable()
export class ChunkClaimer {
  private lastWasSuspect = false;
  private lastDatabase: string | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly catalog: CatalogService,
    private readonly databases: NamedDatabases,
  ) {}

  /**
   * Claims up to `limit` pending operations in order of application, locked for this transaction; none of the
   * databases `passOver` (a chunk of this worker's is in flight there).
   */
  async claim(tx: PoolClient, limit: number, passOver: string[] = []): Promise<ClaimedOperation[]> {
    const { rows: targets } = await tx.query<{
      horizon: string;
      target: string;
      failures: number;
      chunk_size: number | null;
    }>({ name: 'chunk-targets', text: TARGETS_SQL });
    const databases = targets.map((t) => databaseOf(t.target).database).filter((name) => !passOver.includes(name));
    const database = this.nextDatabase(databases);
    if (database === null) return [];
    const ofDatabase = targets.filter((t) => databaseOf(t.target).database === database);
    const suspect = ofDatabase.find((t) => t.failures > 0);
    const healthy = ofDatabase.filter((t) => t.failures === 0);
    this.lastWasSuspect = suspect !== undefined && (healthy.length === 0 || !this.lastWasSuspect);
    const claims = this.lastWasSuspect
      ? [{ target: suspect!.target, cap: Math.min(limit, suspect!.chunk_size ?? limit) }]
      : healthy.map((t) => ({ target: t.target, cap: limit }));
    const names = claims.map((c) => c.target);
    const share = Math.floor(this.config.poll.maxChunkBytes / names.length);
    const { rows } = await tx.query<{ lines: string | null }>({
      name: 'chunk-claim',
      text: CLAIM_TEXT_SQL,
      values: [names, claims.map((c) => c.cap), targets[0].horizon, limit, await this.roundsVersions(names), share],
    });
    return withinBudget(rows[0].lines, names, share);
  }

  /**
   * The database this chunk is for, of those whose targets have operations to take (`databases`, in order of their
   * first operations): another than the last chunk's where there is one, so that databases take turns; never one that
   * was found down (its operations wait for it) or that BATCH_DATABASES no longer names. Null where none is left.
   */
  private nextDatabase(databases: string[]): string | null {
    const usable = [...new Set(databases)].filter((name) => {
      const database = name === MAIN ? null : this.databases.get(name);
      return database === null || (database !== undefined && database.up !== false); // up null: not checked yet
    });
    const next = usable.find((name) => name !== this.lastDatabase) ?? usable[0] ?? null;
    this.lastDatabase = next;
    return next;
  }

  /**
   * Per target, the version of its unique keys that rounds must have been planned against, or null where a target
   * takes no rounds: one it cannot find, or whose statements apply one operation each (in order of id).
   */
  private async roundsVersions(targets: string[]): Promise<(string | null)[]> {
    const versions: (string | null)[] = [];
    for (const target of targets) {
      const table = await this.catalog.find(target);
      versions.push(table && !table.oneRowStatements ? keysVersion(table) : null);
    }
    return versions;
  }
}
