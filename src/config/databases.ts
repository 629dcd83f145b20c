import { ConfigError } from './config-error';

/** A database other than the service's own, named in BATCH_DATABASES. */
export interface NamedDatabase {
  name: string;
  /** The connection URL (`postgres://…`), password included: never logged or shown (see `where`). */
  url: string;
  /** The database as logs and endpoints may name it: host, port and database, without user or password. */
  where: string;
  poolSize: number;
  targetSchemas: readonly string[];
  sourceSchemas: readonly string[];
}

/** What a name in BATCH_DATABASES must look like; `main` is the service's own database. */
const NAME = /^[a-z][a-z0-9_]{0,62}$/;
const SCHEMA = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
/** Schemas no database's tables are read from or written to: the service's own, and the system's. */
const RESERVED_SCHEMA = /^(batch|batch_ledger|information_schema|pg_.*)$/i;

/** Why BATCH_DATABASES cannot be used; the message names the database, never its URL's password. */
class DatabasesError extends ConfigError {
  constructor(problem: string) {
    super('BATCH_DATABASES', problem);
  }
}

/**
 * BATCH_DATABASES (a JSON object: name → URL, or name → {url, poolSize?, targetSchemas?, sourceSchemas?}) read and
 * checked; `main` is the service's own database (host, port, name), which no entry may name again, as no two entries
 * may name one database.
 */
export function parseDatabases(
  text: string | undefined,
  main: { host: string; port: number; name: string },
): NamedDatabase[] {
  if (text === undefined || text.trim() === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new DatabasesError('must be a JSON object of database names to connection URLs');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new DatabasesError('must be a JSON object of database names to connection URLs');
  const databases = Object.entries(parsed as Record<string, unknown>).map(([name, entry]) => databaseOf(name, entry));
  const seen = new Map<string, string>([[`${main.host}:${main.port}/${main.name}`, 'main']]);
  for (const database of databases) {
    const same = seen.get(database.where);
    if (same)
      throw new DatabasesError(`names one database twice: "${same}" and "${database.name}" are both ${database.where}`);
    seen.set(database.where, database.name);
  }
  return databases;
}

function databaseOf(name: string, entry: unknown): NamedDatabase {
  if (name === 'main') throw new DatabasesError('cannot define "main": it is the service\'s own database (DB_*)');
  if (!NAME.test(name))
    throw new DatabasesError(`has an invalid database name "${name.slice(0, 80)}" (^[a-z][a-z0-9_]{0,62}$)`);
  const problem = (what: string) => new DatabasesError(`database "${name}": ${what}`);
  const fields = typeof entry === 'string' ? { url: entry } : entry;
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields))
    throw problem('must be a connection URL or an object with "url"');
  const {
    url,
    poolSize = 4,
    targetSchemas = ['public'],
    sourceSchemas,
    ...unknown
  } = fields as Record<string, unknown>;
  const extra = Object.keys(unknown)[0];
  if (extra !== undefined) throw problem(`has an unknown field "${extra.slice(0, 80)}"`);
  if (typeof url !== 'string') throw problem('needs "url", a postgres:// connection URL');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw problem('has a "url" that is not a URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:')
    throw problem('has a "url" that is not postgres:// or postgresql://');
  const database = decodeURIComponent(parsed.pathname.slice(1));
  if (!parsed.hostname || !database) throw problem('has a "url" without a host or a database name');
  if (!Number.isInteger(poolSize) || (poolSize as number) < 1 || (poolSize as number) > 100)
    throw problem('has a "poolSize" that is not an integer from 1 to 100');
  const targets = schemaList(targetSchemas, 'targetSchemas', problem);
  return {
    name,
    url,
    where: `${parsed.hostname}:${parsed.port || '5432'}/${database}`,
    poolSize: poolSize as number,
    targetSchemas: targets,
    sourceSchemas: sourceSchemas === undefined ? targets : schemaList(sourceSchemas, 'sourceSchemas', problem),
  };
}

function schemaList(value: unknown, field: string, problem: (what: string) => Error): string[] {
  if (!Array.isArray(value) || value.length === 0) throw problem(`has a "${field}" that is not a list of schemas`);
  for (const schema of value) {
    if (typeof schema !== 'string' || !SCHEMA.test(schema)) throw problem(`has an invalid schema name in "${field}"`);
    if (RESERVED_SCHEMA.test(schema)) throw problem(`must not name the schema "${schema}" in "${field}"`);
  }
  return value as string[];
}
