import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import type { Pool } from 'pg';
import { RelayLoop } from '../../src/services/outbox/outbox-relay';
import { Wakeup } from '../../src/services/worker-loop';

describe('the outbox relay without a broker', () => {
  it('leaves the outbox alone, and stops at once', async () => {
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve)); // nothing listens there now
    let connections = 0;
    const pool = {
      connect: () => {
        connections += 1;
        return Promise.reject(new Error('the relay must not take rows it cannot publish'));
      },
    } as unknown as Pool;
    const warnings: string[] = [];
    const states: boolean[] = [];
    const relay = new RelayLoop(
      { url: `amqp://guest:guest@127.0.0.1:${port}`, exchange: 'x', intervalMs: 10 },
      pool,
      new Wakeup(),
      { warn: (message: string) => warnings.push(message) },
      (connected) => states.push(connected),
    );
    relay.onApplicationBootstrap();
    await new Promise((resolve) => setTimeout(resolve, 300)); // some thirty turns
    const started = Date.now();
    await relay.stop();
    assert.ok(Date.now() - started < 2000, 'stopping does not wait to publish to a broker that is not there');
    assert.equal(connections, 0, 'no turn took rows from the outbox');
    assert.deepEqual(warnings, []);
    assert.deepEqual(states, []);
  });
});
