import { from as copyFrom } from 'pg-copy-streams';
import type { ClientConfig, Pool, PoolClient } from 'pg';
import type { AppConfig } from '../../config/app-config';

/** How the service's pools keep and set up their connections: the worker's and API's pool, and the relay thread's. */
export const POOL_SETTINGS = {
  // a pool of a fixed size, opened at start (Database.onModuleInit), as HikariCP keeps one: an idle connection closed
  // is opened again under the next burst of work, at its cost
  idleTimeoutMillis: 0,
  connectionTimeoutMillis: 5000,
  // The service's statements are short even over thousands of rows: compiling one (PostgreSQL's JIT, for a plan
  // estimated expensive) took longer than running it, and never paid back.
  options: '-c jit=off',
};

/** Connection settings of a single pg Client for the configured database (or another one on the same server). */
export function clientConfig(db: AppConfig['db'], database = db.name): ClientConfig {
  return { host: db.host, port: db.port, user: db.username, password: db.password, database };
}

/**
 * Runs `work` in one transaction on one connection of `pool`; rolls back when it throws. A connection that dies
 * meanwhile (the database restarted) fails the running query, is destroyed instead of returned to the pool, and never
 * raises an unhandled 'error' event. `setup` (parameterless statements, such as SET) goes with the BEGIN.
 */
export async function inTransaction<T>(pool: Pool, work: (tx: PoolClient) => Promise<T>, setup?: string): Promise<T> {
  const tx = await pool.connect();
  let broken = false;
  const onError = () => (broken = true);
  tx.on('error', onError);
  try {
    await tx.query(setup ? `BEGIN; ${setup}` : 'BEGIN');
    const result = await work(tx);
    await tx.query('COMMIT');
    return result;
  } catch (error) {
    await tx.query('ROLLBACK').catch(() => (broken = true));
    throw error;
  } finally {
    tx.off('error', onError);
    tx.release(broken ? true : undefined);
  }
}

/**
 * `work` on a connection of `pool`, given back after it (closed where `work` failed: it may be in the middle of a
 * COPY). A connection that dies meanwhile (its server stopped) fails `work` and is told to `died`, never raises an
 * unhandled 'error' event.
 */
export async function usingConnection<T>(
  pool: Pool,
  work: (connection: PoolClient) => Promise<T>,
  died: (error: Error) => void = () => undefined,
): Promise<T> {
  const connection = await pool.connect();
  connection.on('error', died);
  let failed = true;
  try {
    const result = await work(connection);
    failed = false;
    return result;
  } finally {
    connection.off('error', died);
    connection.release(failed);
  }
}

/** Runs `work` in one transaction on `connection`, which the caller gives back; rolls back when it throws. */
export async function transactionOn<T>(
  connection: PoolClient,
  work: (tx: PoolClient) => Promise<T>,
  setup?: string,
): Promise<T> {
  await connection.query(setup ? `BEGIN; ${setup}` : 'BEGIN');
  try {
    const result = await work(connection);
    await connection.query('COMMIT');
    return result;
  } catch (error) {
    await connection.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** `COPY … FROM STDIN` (the statement `copy`) of `data` in `tx`: settled once the database took it all, or refused. */
export function copyInto(tx: PoolClient, copy: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = tx.query(copyFrom(copy));
    stream.on('error', reject);
    stream.on('finish', resolve);
    stream.end(data);
  });
}
