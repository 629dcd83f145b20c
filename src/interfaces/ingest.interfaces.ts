import type { AuthenticatedClient } from '../services/client.service';
import type { ValidOperation } from '../services/operation-validator.service';

/** Hooks around ingest (metrics); every method is optional. */
export abstract class IngestListener {
  /** After a create committed, with the operations it stored (duplicates of earlier creates are left out). */
  afterCreate?(client: AuthenticatedClient, operations: ValidOperation[]): void;
}

/** All ingest listeners, as one injectable. */
export class IngestListeners {
  constructor(readonly all: IngestListener[]) {}
}
