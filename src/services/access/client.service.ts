import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppConfig } from '../../config/app-config';
import { ClientEntity } from '../../entities';
import { BatchError } from '../batch-error';
import type { PoolClient } from 'pg';
import { Database, numberArray } from '../storage/database';
import { databaseOf } from '../storage/named-databases';
import type { Grants } from '../../interfaces/chunk.interfaces';
import { CLIENT_LOCK_SPACE, lockClient, lockTargets } from '../storage/advisory-locks';
import { afterPosition } from '../storage/streams';
import { ClientChanges } from './client-changes';
import type { JobGrants } from '../../interfaces/job.interfaces';

/** The caller of a request, once its API key is verified. */
export class AuthenticatedClient {
  constructor(
    readonly id: string,
    readonly name: string,
    readonly admin: boolean,
    readonly targets: string[],
    readonly rateLimitPerSecond: number | null,
    readonly sources: string[] = [],
  ) {}

  mayWrite(target: string): boolean {
    return mayWrite(this, target);
  }
}

/**
 * A grant is `*` (every table of every database), or a table of one database (`main`, the service's own, where the
 * grant names none): `database:*` (all of its tables), a canonical `schema.table`, or a bare table name in any of its
 * allowed schemas.
 */
function granted(grants: string[], table: string): boolean {
  const { database, local } = databaseOf(table);
  const bare = local.slice(local.indexOf('.') + 1);
  return grants.some((grant) => {
    if (grant === '*') return true;
    const granting = databaseOf(grant);
    return granting.database === database && [local, bare, '*'].includes(granting.local);
  });
}

/** Admins may write all targets. */
function mayWrite({ admin, targets }: { admin: boolean; targets: string[] }, target: string): boolean {
  return admin || granted(targets, target);
}

/**
 * What a client is not granted of the tables a job reads and writes (`schema.table` each), said for its owner; null
 * when it is granted all. Admins may read and write all.
 */
export function missingGrant(
  client: { admin: boolean; targets: string[]; sources: string[] },
  { reads, writes, given = {} }: JobGrants,
): string | null {
  if (client.admin) return null;
  const unread = reads.find((table) => !granted(client.sources, table));
  if (unread) return `the client may not read ${given[unread] ?? unread} (its sources)`;
  const unwritten = writes.find((table) => !granted(client.targets, table));
  return unwritten ? `the client may not write ${given[unwritten] ?? unwritten} (its targets)` : null;
}

export interface ClientCreate {
  name: string;
  targets: string[];
  sources?: string[];
  admin?: boolean;
  rateLimitPerSecond?: number | null;
}

/** A change of a client's grants, admin flag or rate limit: absent fields are kept, a `null` rate limit removed. */
export type ClientChange = Partial<Omit<ClientCreate, 'name'>>;

export const ADMIN_CLIENT_NAME = 'admin';

/** Keys' clients kept at most (known ones and keys of no client): a flood of random keys empties it, nothing more. */
const MAX_KEPT = 10_000;

/**
 * Lookups of keys that begin in one turn of the event loop, answered by one call of `load` for all of them: a map from
 * key to what was found (a key not in it found nothing).
 */
class Batched<K, V> {
  private waiting = new Map<K, { resolve(value: V | undefined): void; reject(error: unknown): void }[]>();

  constructor(private readonly load: (keys: K[]) => Promise<Map<K, V>>) {}

  find(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) setImmediate(() => this.flush());
      const waiters = this.waiting.get(key);
      if (waiters) waiters.push({ resolve, reject });
      else this.waiting.set(key, [{ resolve, reject }]);
    });
  }

  private flush(): void {
    const waiting = this.waiting;
    this.waiting = new Map();
    this.load([...waiting.keys()]).then(
      (found) => waiting.forEach((waiters, key) => waiters.forEach((w) => w.resolve(found.get(key)))),
      (error: unknown) => waiting.forEach((waiters) => waiters.forEach((w) => w.reject(error))),
    );
  }
}

interface ClientRow {
  id: string;
  name: string;
  api_key_hash: string;
  targets: string[];
  sources: string[];
  admin: boolean;
  rate_limit_per_second: number | null;
  revoked_at: Date | null;
}

/**
 * Clients and their API keys. Keys are shown once and stored only as an HMAC keyed by API_KEY_ENCRYPTION_SECRET.
 * The clients that keys authenticated are kept by that hash while changes of clients are heard (ClientChanges), and
 * forgotten at each change: a rotated or revoked key stops working at once on the instance that changed it, and as
 * the change commits on the others (the notification's way); while changes cannot be heard, every request looks its
 * client up. Looking it up was a query per wave of requests in flight, a large share of a single create's cost in the
 * database (performance log).
 */
@Injectable()
export class ClientService implements OnApplicationBootstrap {
  private readonly logger = new Logger(ClientService.name);
  private readonly known = new Map<string, Promise<ClientRow | undefined>>();
  private readonly lookups = new Batched<string, ClientRow>(async (hashes) => {
    const rows = await this.db.query<ClientRow>(
      `SELECT id, name, api_key_hash, targets, sources, admin, rate_limit_per_second, revoked_at FROM batch.clients
        WHERE api_key_hash = ANY ($1::text[])`,
      [hashes],
    );
    return new Map(rows.map((row) => [row.api_key_hash, row]));
  });

  constructor(
    private readonly db: Database,
    private readonly config: AppConfig,
    private readonly changes: ClientChanges,
  ) {
    changes.onChange(() => this.known.clear());
  }

  private get clients() {
    return this.db.dataSource.getRepository(ClientEntity);
  }

  hashKey(apiKey: string): string {
    return createHmac('sha256', this.config.apiKeySecret).update(apiKey).digest('hex');
  }

  /** The client whose key this is; UNAUTHENTICATED when there is none or it was revoked. */
  async authenticate(apiKey: string | undefined): Promise<AuthenticatedClient> {
    if (!apiKey || apiKey.length > 512) throw new BatchError('UNAUTHENTICATED', 'Missing or invalid API key');
    // Looked up by keyed hash (timing reveals nothing about stored keys), then compared in constant time.
    const hash = this.hashKey(apiKey);
    const client = await this.lookup(hash);
    if (!client || client.revoked_at || !timingSafeEqual(Buffer.from(client.api_key_hash), Buffer.from(hash))) {
      throw new BatchError('UNAUTHENTICATED', 'Missing or invalid API key');
    }
    return new AuthenticatedClient(
      client.id,
      client.name,
      client.admin,
      client.targets,
      client.rate_limit_per_second,
      client.sources,
    );
  }

  /**
   * The client of a key's hash, or undefined for a key of no client: the one kept, or looked up once for the requests
   * that ask meanwhile. Kept, a key of no client too, when changes were heard when the lookup began, so that a flood
   * of wrong keys costs no query each; at most MAX_KEPT of them, forgotten all at once past that. Lookups that begin
   * in one turn of the event loop share one query.
   */
  private lookup(hash: string): Promise<ClientRow | undefined> {
    let client = this.known.get(hash);
    if (!client) {
      if (this.known.size >= MAX_KEPT) this.known.clear();
      const keep = this.changes.watch();
      const looked = this.lookups.find(hash);
      const forget = () => this.known.get(hash) === looked && this.known.delete(hash);
      looked.then(() => keep || forget(), forget);
      this.known.set(hash, (client = looked));
    }
    return client;
  }

  /** Creates or updates the built-in admin client from BATCH_ADMIN_API_KEY. */
  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.adminApiKey) {
      this.logger.warn('BATCH_ADMIN_API_KEY is not set: no admin client, so no clients can be created over REST');
      return;
    }
    await this.db.query(
      `INSERT INTO batch.clients (name, api_key_hash, targets, admin) VALUES ($1, $2, '{*}', true)
       ON CONFLICT (name) DO UPDATE SET api_key_hash = EXCLUDED.api_key_hash, admin = true, targets = '{*}', revoked_at = NULL, updated_at = now()`,
      [ADMIN_CLIENT_NAME, this.hashKey(this.config.adminApiKey)],
    );
  }

  async create(request: ClientCreate): Promise<{ id: string; name: string; apiKey: string }> {
    const apiKey = newApiKey();
    const rows: { id: string }[] = await this.db.query(
      `INSERT INTO batch.clients (name, api_key_hash, targets, sources, admin, rate_limit_per_second)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id`,
      [
        request.name,
        this.hashKey(apiKey),
        request.targets,
        request.sources ?? [],
        request.admin ?? false,
        request.rateLimitPerSecond ?? null,
      ],
    );
    if (rows.length === 0) throw new BatchError('CONFLICT', `A client named "${request.name}" exists already`);
    return { id: rows[0].id, name: request.name, apiKey };
  }

  list(): Promise<ClientEntity[]> {
    return this.clients.find({ order: { id: 'ASC' } });
  }

  async rotateKey(id: string): Promise<{ id: string; name: string; apiKey: string }> {
    const apiKey = newApiKey();
    const rows: { name: string }[] = await this.db.query(
      `UPDATE batch.clients SET api_key_hash = $2, updated_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING name`,
      [id, this.hashKey(apiKey)],
    );
    this.known.clear(); // at once here; the notification may come later
    if (rows.length === 0) throw new BatchError('NOT_FOUND', `No active client ${id}`);
    return { id, name: rows[0].name, apiKey };
  }

  /**
   * The grants of these clients as a chunk's transaction `tx` reads them, once no revocation or change of theirs is in
   * progress (batch.client_grants); a revoked client may write nothing.
   */
  async grantsNow(tx: PoolClient, clientIds: string[]): Promise<Grants> {
    const { rows } = await tx.query<{ id: string; targets: string[]; admin: boolean }>({
      name: 'client-grants',
      text: `SELECT * FROM batch.client_grants($1::bigint[], ${CLIENT_LOCK_SPACE})`,
      values: [numberArray(clientIds)],
    });
    const clients = new Map(rows.map((row) => [row.id, row]));
    return { mayWrite: (clientId, target) => clients.has(clientId) && mayWrite(clients.get(clientId)!, target) };
  }

  /**
   * What the client (by id) is not granted of a job's tables, as it is now; a revoked client nothing. In a job chunk's
   * transaction `tx`, read once no change of the client is in progress, holding its lock shared to the end, as a
   * queue's chunk reads its clients (batch.client_grants): a revocation or narrowing answered before is seen, and one
   * that comes later waits for the chunk to commit.
   */
  async missingGrant(clientId: string, grants: JobGrants, tx?: PoolClient): Promise<string | null> {
    const sql = `SELECT targets, sources, admin, revoked_at FROM batch.clients WHERE id = $1`;
    let client: ClientRow | undefined;
    if (tx) {
      await tx.query({
        name: 'job-client-lock',
        text: `SELECT pg_advisory_xact_lock_shared(${CLIENT_LOCK_SPACE}, ($1::bigint % 2147483647)::int)`,
        values: [clientId],
      });
      [client] = (await tx.query<ClientRow>({ name: 'job-client-grants', text: sql, values: [clientId] })).rows;
    } else [client] = await this.db.query<ClientRow>(sql, [clientId]);
    if (!client || client.revoked_at) return 'the client was revoked';
    return missingGrant(client, grants);
  }

  /**
   * Takes effect with the client's next request on every instance (as the change commits). Grants hold when
   * operations are applied too: its pending operations on targets it may no longer write are cancelled with it, and a
   * chunk reads its grants after the change (ChunkStep).
   */
  async update(id: string, change: ClientChange): Promise<ClientEntity> {
    const updated = await this.changeClient(id, async (tx) => {
      const { rows } = await tx.query<{ targets: string[]; admin: boolean }>(
        `UPDATE batch.clients
            SET targets = coalesce($2, targets), admin = coalesce($3, admin),
                rate_limit_per_second = CASE WHEN $4 THEN $5 ELSE rate_limit_per_second END,
                sources = coalesce($6, sources), updated_at = now()
          WHERE id = $1 AND revoked_at IS NULL RETURNING targets, admin`,
        [
          id,
          change.targets ?? null,
          change.admin ?? null,
          change.rateLimitPerSecond !== undefined,
          change.rateLimitPerSecond ?? null,
          change.sources ?? null,
        ],
      );
      return rows[0] ?? null;
    });
    if (!updated) throw new BatchError('NOT_FOUND', `No active client ${id}`);
    return this.clients.findOneByOrFail({ id });
  }

  /** The key stops working at once; the client's pending operations are cancelled with it. */
  async revoke(id: string): Promise<void> {
    const revoked = await this.changeClient(id, async (tx) => {
      const { rowCount } = await tx.query(
        `UPDATE batch.clients SET revoked_at = now(), updated_at = now() WHERE id = $1 AND revoked_at IS NULL`,
        [id],
      );
      return rowCount ? { targets: [], admin: false } : null;
    });
    if (!revoked) throw new BatchError('NOT_FOUND', `No active client ${id}`);
  }

  /**
   * A change of a client's grants (`change` returns them as they are now, or null when there is no such active
   * client), then its pending operations on targets it may no longer write cancelled. The targets' locks are taken
   * first, as chunks take them, then the client's: a chunk that read the client's grants before has committed, and
   * one that reads them after sees the change. Whatever it applied was applied before this is answered.
   */
  private async changeClient(
    id: string,
    change: (tx: PoolClient) => Promise<{ targets: string[]; admin: boolean } | null>,
  ): Promise<boolean> {
    const changed = await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ target: string }>(
        `SELECT target FROM batch.streams UNION SELECT target FROM batch.deferred WHERE client_id = $1`,
        [id],
      );
      await lockTargets(
        tx,
        rows.map((row) => row.target),
      );
      await lockClient(tx, id);
      const grants = await change(tx);
      if (grants)
        await cancelUngranted(
          tx,
          id,
          rows.map((row) => row.target).filter((t) => !mayWrite(grants, t)),
        );
      return grants !== null;
    });
    this.known.clear(); // at once here; the notification may come later
    return changed;
  }
}

/** Cancels the pending operations of a client on these targets, whose locks the transaction holds. */
async function cancelUngranted(tx: PoolClient, clientId: string, ungranted: string[]): Promise<void> {
  if (ungranted.length === 0) return;
  await tx.query(
    `WITH cancelled AS (
       SELECT d.id, d.client_id, d.target, d.attempts FROM batch.deferred d WHERE d.client_id = $1 AND d.target = ANY ($2::text[])
       UNION ALL
       SELECT o.id, o.client_id, o.target, 0 FROM batch.streams s
        CROSS JOIN LATERAL (
          SELECT o.id, o.client_id, o.target FROM batch.operations o
           WHERE ${afterPosition('o', 's')} AND o.client_id = $1
             AND NOT EXISTS (SELECT FROM batch.outcomes x WHERE x.operation_id = o.id)) o
        WHERE s.target = ANY ($2::text[])),
     undeferred AS (DELETE FROM batch.deferred d USING cancelled c WHERE d.id = c.id),
     counted AS (
       INSERT INTO batch.operation_counts (client_id, target, status, minute, added, removed)
       SELECT client_id, target, 'PENDING', date_trunc('minute', now()), 0, count(*) FROM cancelled GROUP BY 1, 2)
     INSERT INTO batch.outcomes (operation_id, client_id, target, status, attempts, error_code, error_message, settled_at)
     SELECT id, client_id, target, 'CANCELLED', attempts, 'FORBIDDEN', 'cancelled: the client is no longer granted this target', now()
       FROM cancelled`,
    [clientId, ungranted],
  );
}

function newApiKey(): string {
  return `bsk_${randomBytes(32).toString('base64url')}`;
}
