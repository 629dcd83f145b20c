import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { Pool, PoolClient } from 'pg';
import { AppConfig } from '../../config/app-config';
import type { AuthenticatedClient } from '../access/client.service';
import { BatchError } from '../batch-error';
import { clientConfig, inTransaction, POOL_SETTINGS } from '../storage/pg-client';

/** How long a refused upload is asked to wait: uploads last seconds at least, so not less than one. */
const RETRY_AFTER_MS = 1000;
/** An upload connection left idle this long is closed: uploads come in bursts, and hold nothing between them. */
const IDLE_CONNECTION_MS = 10_000;

/**
 * What uploads may take of a process. An upload's transaction lasts as long as its body takes to arrive, which the
 * caller decides: on the pool the queue, the jobs and the API share, a few slow bodies held every connection and
 * starved them all. So uploads have connections of their own (a pool of BATCH_IMPORT_MAX_UPLOADS, opened when
 * needed), as many uploads run at once and BATCH_IMPORT_MAX_CLIENT_UPLOADS of them per client; one beyond either is
 * refused at once (RATE_LIMITED), before any of its body is read, so that no upload ever waits for a connection.
 */
@Injectable()
export class UploadCapacity implements OnModuleDestroy {
  private readonly logger = new Logger(UploadCapacity.name);
  private readonly pool: Pool;
  private uploads = 0;
  private ended: Promise<void> | null = null;
  private readonly uploadsByClient = new Map<string, number>();

  constructor(private readonly config: AppConfig) {
    this.pool = new Pool({
      ...clientConfig(config.db),
      ...POOL_SETTINGS,
      max: config.uploads.maxUploads,
      idleTimeoutMillis: IDLE_CONNECTION_MS,
      application_name: `batch-service:${config.role}:uploads`,
    });
    // a connection that dies while idle (the database restarted) is dropped from the pool; the next upload opens one
    this.pool.on('error', (error) => this.logger.warn(`upload connection lost: ${error.message}`));
  }

  /** Takes a place for an upload of `client`: its release (once), or RATE_LIMITED when there is none now. */
  admit(client: AuthenticatedClient): () => void {
    const { maxUploads, maxClientUploads } = this.config.uploads;
    const ofClient = this.uploadsByClient.get(client.id) ?? 0;
    if (ofClient >= maxClientUploads)
      throw new BatchError(
        'RATE_LIMITED',
        `Client "${client.name}" has ${maxClientUploads} uploads in progress already, as many as one client may; retry`,
        { retryAfterMs: RETRY_AFTER_MS },
      );
    if (this.uploads >= maxUploads)
      throw new BatchError('RATE_LIMITED', `The service has ${maxUploads} uploads in progress already; retry`, {
        retryAfterMs: RETRY_AFTER_MS,
      });
    this.uploads++;
    this.uploadsByClient.set(client.id, ofClient + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.uploads--;
      const left = this.uploadsByClient.get(client.id)! - 1;
      if (left === 0) this.uploadsByClient.delete(client.id);
      else this.uploadsByClient.set(client.id, left);
    };
  }

  /** Runs `work` in one transaction on an upload connection (inTransaction); only within a place admit() gave. */
  transaction<T>(work: (tx: PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, work);
  }

  /**
   * Closes the pool once: a shutdown closes the RPC microservice, which runs the modules' destroy hooks, and then the
   * application, which runs them again (a second end() of a pool rejects, and stopped the shutdown).
   */
  onModuleDestroy(): Promise<void> {
    return (this.ended ??= this.pool.end());
  }
}
