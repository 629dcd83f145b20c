import type { OperationType } from './operation.interfaces';

/** What ingest listeners learn of each operation a create stored. */
export interface StoredOperation {
  target: string;
  type: OperationType;
}

/** Hooks around ingest (metrics, waking the pollers); every method is optional. */
export abstract class IngestListener {
  /** After a create committed, with the operations it stored (duplicates of earlier creates are left out). */
  afterCreate?(operations: readonly StoredOperation[]): void;
}

/** All ingest listeners, as one injectable. */
export class IngestListeners {
  constructor(readonly all: IngestListener[]) {}
}
