import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/app-config';
import type { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { PollerWakeup } from '../../src/services/engine/poller-wakeup.service';
import { Poller } from '../../src/services/engine/poller.service';

describe('Poller: chunk sizes', () => {
  it('takes the base limit while chunks are not full, the largest size after a full one', async () => {
    const config = loadConfig({ BATCH_PROCESS_OPERATION_LIMIT: '1000', BATCH_CHUNK_MAX_OPERATIONS: '20000' });
    const limits: number[] = [];
    const fullness = [false, true, true, true, false, true];
    const step = {
      execute: (limit: number) => (
        limits.push(limit),
        Promise.resolve({ chunkId: null, read: 0, full: fullness.shift()! })
      ),
    } as unknown as ChunkStep;
    const poller = new Poller(config, step, new PollerWakeup()) as unknown as { turn(): Promise<boolean> };
    for (let i = 0; i < 6; i++) await poller.turn();
    assert.deepEqual(limits, [1000, 1000, 20000, 20000, 20000, 1000]);
  });
});
