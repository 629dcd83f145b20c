import assert from 'node:assert/strict';
import { Client } from 'pg';
import {
  BatchServiceClient,
  BatchServiceError,
  IOperationsSettledEvent,
  SettledEventsConsumer,
} from '../../src/client';
import type { IJobExecution } from '../../src/interfaces/job.interfaces';
import { eventually, http, RMQ_URL, ServiceProcess, settledQueue, startService } from './service-process';
import { dbClientConfig } from './shared-services';

export { RMQ_URL };

/** A connection to the service's database for a test, which survives a restart of PostgreSQL by reconnecting. */
/** A job execution as `key`'s client sees it over REST. */
export async function jobExecution(service: ServiceProcess, key: string, id: string): Promise<IJobExecution> {
  return (await http<IJobExecution>(service, 'GET', `/api/jobs/executions/${id}`, key)).body;
}

/** The job execution once it ended COMPLETED or FAILED, within `timeoutMs`. */
export function jobEnded(service: ServiceProcess, key: string, id: string, timeoutMs: number): Promise<IJobExecution> {
  return eventually(
    async () => {
      const now = await jobExecution(service, key, id);
      return ['COMPLETED', 'FAILED'].includes(now.status) ? now : undefined;
    },
    timeoutMs,
    `job execution ${id} to end`,
  );
}

/** Resolves once the service is ready with the database `name` of BATCH_DATABASES reported down in /health. */
export async function reportedDown(service: ServiceProcess, name: string, timeoutMs: number): Promise<void> {
  await eventually(
    async () => {
      const health = await http<{ details: Record<string, Record<string, string>> }>(service, 'GET', '/health', null);
      return health.status === 200 && health.body.details.databases?.[name] === 'down' ? true : undefined;
    },
    timeoutMs,
    `${name} reported down, the service ready`,
  );
}

export class TestDb {
  private client: Client | null = null;

  /** `env`: a service's, when it names another database server than the shared one. */
  constructor(
    private readonly database: string,
    private readonly env: Record<string, string> = {},
  ) {}

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        if (!this.client) {
          const client = new Client(dbClientConfig(this.database, this.env));
          client.on('error', () => (this.client = null));
          await client.connect();
          this.client = client;
        }
        return (await this.client.query(sql, params)).rows as T[];
      } catch (error) {
        this.client?.end().catch(() => undefined);
        this.client = null;
        if (attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  async count(sql: string, params?: unknown[]): Promise<number> {
    return Number((await this.query<{ n: string }>(sql, params))[0].n);
  }

  async close(): Promise<void> {
    await this.client?.end().catch(() => undefined);
  }
}

/** A calling service: a client with its key, an RPC client, and a durable queue of its settled notifications. */
export interface Caller {
  name: string;
  apiKey: string;
  rpc: BatchServiceClient;
  notified: Map<string, IOperationsSettledEvent['operations'][number]>;
  close(): Promise<void>;
}

export async function createCaller(
  service: ServiceProcess,
  name: string,
  targets: string[],
  timeoutMs = 15_000,
): Promise<Caller> {
  const created = await http<{ apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, { name, targets });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const rpc = new BatchServiceClient({
    url: service.env.BATCH_SERVICE_RMQ_URL ?? RMQ_URL,
    queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
    apiKey: created.body.apiKey,
    timeoutMs,
  });
  const notified = new Map<string, IOperationsSettledEvent['operations'][number]>();
  const queue = settledQueue(service.env, name);
  const consumer = new SettledEventsConsumer({
    url: service.env.BATCH_SERVICE_RMQ_URL ?? RMQ_URL,
    exchange: service.env.BATCH_SERVICE_EVENTS_EXCHANGE,
    client: name,
    queue,
  });
  await consumer.start((event) => {
    for (const operation of event.operations) notified.set(operation.id, operation);
  });
  return {
    name,
    apiKey: created.body.apiKey,
    rpc,
    notified,
    close: async () => {
      await rpc.close().catch(() => undefined);
      await consumer.stop().catch(() => undefined);
    },
  };
}

/** Waits until no operation is PENDING, then until every settled one of the caller's was notified to it. */
export async function settleAll(
  db: TestDb,
  caller: Caller,
  timeoutMs = 60_000,
): Promise<{ id: string; status: string }[]> {
  await eventually(
    async () =>
      (await db.count(`SELECT count(*) AS n FROM batch.operation_states WHERE status = 'PENDING'`)) === 0
        ? true
        : undefined,
    timeoutMs,
    'every operation to settle',
  );
  const settled = await db.query<{ id: string; status: string }>(
    `SELECT o.id, o.status FROM batch.operation_states o JOIN batch.clients c ON c.id = o.client_id
      WHERE o.status IN ('COMPLETED', 'FAILED') AND c.name = $1 ORDER BY o.id`,
    [caller.name],
  );
  await eventually(
    async () => (settled.every((o) => caller.notified.has(o.id)) ? true : undefined),
    timeoutMs,
    'every settled operation to be notified',
  );
  return settled;
}

/** Lanes of createOperation calls, one after another per lane, until stopped: what was acknowledged and what failed. */
export function steadyLoad(caller: Caller, lanes: number, target = 'events') {
  const acknowledged: string[] = [];
  const errors = new Map<string, number>();
  let slowest = 0;
  let stopped = false;
  const running = Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let i = 0; !stopped; i++) {
        const started = Date.now();
        try {
          acknowledged.push(
            (await caller.rpc.createOperation({ target, type: 'insert', values: { ref: `${lane}-${i}` } })).id,
          );
        } catch (error) {
          const code = error instanceof BatchServiceError ? error.code : String(error);
          errors.set(code, (errors.get(code) ?? 0) + 1);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        slowest = Math.max(slowest, Date.now() - started);
      }
    }),
  );
  return {
    acknowledged,
    errors,
    slowest: () => slowest,
    stop: async () => {
      stopped = true;
      await running;
    },
  };
}

/**
 * Processes of the service sharing one database (api, worker, or a restarted instance), and a connection to that
 * database; close() stops them all and drops the database.
 */
export class ServiceGroup {
  readonly processes: ServiceProcess[] = [];
  readonly db: TestDb;

  constructor(readonly env: Record<string, string>) {
    this.db = new TestDb(env.DB_NAME, env);
  }

  async start(role?: 'all' | 'api' | 'worker'): Promise<ServiceProcess> {
    const started = await startService(role ? { ...this.env, BATCH_ROLE: role } : this.env);
    this.processes.push(started);
    return started;
  }

  /** The processes not killed or stopped. */
  alive(): ServiceProcess[] {
    return this.processes.filter((p) => p.process.exitCode === null && p.process.signalCode === null);
  }

  /** kill -9 of `victim`, then a process of the same settings in its place. */
  async killAndReplace(victim: ServiceProcess): Promise<void> {
    victim.process.kill('SIGKILL');
    await new Promise((resolve) => victim.process.once('exit', resolve));
    await this.start();
  }

  /** The live process running the job instance's execution, once that has committed `chunks` chunks. */
  leaseHolder(instanceId: string, chunks: number): Promise<ServiceProcess> {
    return eventually(
      async () => {
        const [row] = await this.db.query<{ owner: string; commits: string }>(
          `SELECT e.lease_owner AS owner, coalesce(sum(s.commit_count), 0) AS commits
             FROM batch.job_executions e LEFT JOIN batch.step_executions s ON s.job_execution_id = e.id
            WHERE e.instance_id = $1 AND e.status = 'STARTED' AND e.lease_owner IS NOT NULL GROUP BY e.id`,
          [instanceId],
        );
        if (!row || Number(row.commits) < chunks) return undefined;
        // a killed owner holds the execution until its lease runs out: wait for a live one
        return this.alive().find((p) => p.process.pid === Number(row.owner.split(':')[1]));
      },
      60_000,
      'a worker to run the job',
    );
  }

  async close(): Promise<void> {
    for (const p of this.processes) await p.stop();
    await this.db.close();
    await this.processes[0]?.destroy();
  }
}
