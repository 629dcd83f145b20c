import type { ClaimedOperation } from '../../src/interfaces/chunk.interfaces';
import type { OperationType, RowValues } from '../../src/interfaces/operation.interfaces';
import type { TargetTable } from '../../src/interfaces/catalog.interfaces';
import { planningOf } from '../../src/services/ingest/row-identity';

export interface RawOperation {
  id: string;
  type: OperationType;
  values: RowValues | null;
  key: RowValues | null;
  conflictKey: string[] | null;
}

/** An operation as a chunk claims it: what create stored, its planning computed against `table` (row-identity.ts). */
export function claimed(
  table: TargetTable,
  raw: RawOperation,
  extra: Partial<ClaimedOperation> = {},
): ClaimedOperation {
  const conflictKey = raw.type === 'upsert' ? (raw.conflictKey ?? table.primaryKey) : null;
  return {
    id: raw.id,
    clientId: '1',
    target: table.name,
    ...planningOf(table, { ...raw, conflictKey }),
    priority: 0,
    attempts: 0,
    failures: 0,
    bytes: 0,
    chars: 8,
    deferred: false,
    count: 1,
    ...extra,
  };
}

/** A claimed operation where only its id and what is given matter (no planning). */
export function claimedId(id: string, extra: Partial<ClaimedOperation> = {}): ClaimedOperation {
  return {
    id,
    clientId: '1',
    target: 'public.items',
    shape: '',
    identity: '',
    priority: 0,
    attempts: 0,
    failures: 0,
    bytes: 0,
    chars: 8,
    deferred: false,
    count: 1,
    ...extra,
  };
}
