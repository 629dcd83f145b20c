import { AsyncLocalStorage } from 'node:async_hooks';

/** Structured fields for every log line written within one unit of work (an RPC call: its request ids). */
export type LogFields = Record<string, string | undefined>;

const current = new AsyncLocalStorage<LogFields>();

/** Runs `work` so that every log line it writes, also asynchronously, carries `fields` (added to the enclosing ones). */
export function withLogFields<T>(fields: LogFields, work: () => T): T {
  return current.run({ ...current.getStore(), ...fields }, work);
}

/** The fields of the unit of work in progress (pino's mixin); none outside of one. */
export function logFields(): LogFields {
  return current.getStore() ?? {};
}
