import type { LoggerService } from '@nestjs/common';
import type { ChunkResult } from './chunk-step.service';

/**
 * Chunks for other databases finished beside the poller's turns, one at a time per database: the poller claims and
 * prepares a chunk for another database, hands it to that database's lane and goes on with the others. A database
 * that stops answering mid-chunk (a frozen host, a lost route: its statements wait without failing) holds back its own
 * operations only, as one that refuses connections does.
 */
export class DatabaseLanes {
  private readonly running = new Map<string, Promise<void>>();
  /** The databases whose last chunk was full: a backlog waits there. */
  private readonly full = new Set<string>();

  /** `done` is told when a lane's chunk is finished: its database may be claimed for again. */
  constructor(
    private readonly logger: Pick<LoggerService, 'warn'>,
    private readonly done: () => void,
  ) {}

  /** The databases with a chunk in flight: not claimed for until it is finished. */
  busy(): string[] {
    return [...this.running.keys()];
  }

  /** Whether a lane's last chunk was full. */
  backlog(): boolean {
    return this.full.size > 0;
  }

  /** `work`, the finishing of a chunk for `database`, in its lane; a failure is logged (its lease lets another finish it). */
  start(database: string, work: Promise<ChunkResult>): void {
    const lane = work.then(
      (result) => (result.full ? this.full.add(database) : this.full.delete(database)),
      (error: Error) => this.logger.warn(`chunk for database ${database} not finished: ${error.message}`),
    );
    this.running.set(
      database,
      lane.then(() => {
        this.running.delete(database);
        this.done();
      }),
    );
  }

  /** Resolves once every lane's chunk is finished. */
  async idle(): Promise<void> {
    await Promise.all(this.running.values());
  }
}
