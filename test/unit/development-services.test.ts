import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/app-config';
import { answers, brokerAddress, developmentDatabase, missingBroker } from '../../src/development-services';

/** A port nothing listens on (one the system handed out, then freed). */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('what a development start does without its services', () => {
  it('tells a port that answers from one that does not', async () => {
    const server = createServer((socket) => socket.destroy()).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    try {
      assert.equal(await answers('127.0.0.1', port), true);
    } finally {
      server.close();
    }
    assert.equal(await answers('127.0.0.1', await closedPort()), false);
  });

  it('shows the broker without its credentials, with the default port of its scheme', () => {
    assert.deepEqual(brokerAddress('amqp://guest:guest@127.0.0.1:5672'), {
      host: '127.0.0.1',
      port: 5672,
      shown: 'amqp://127.0.0.1:5672',
    });
    assert.deepEqual(brokerAddress('amqps://user:secret@rabbit/vhost'), {
      host: 'rabbit',
      port: 5671,
      shown: 'amqps://rabbit:5671',
    });
  });

  it('says how to get a broker in development when none answers, never in production', async () => {
    const url = `amqp://guest:secret@127.0.0.1:${await closedPort()}`;
    const missing = await missingBroker(loadConfig({ BATCH_SERVICE_RMQ_URL: url }));
    assert.match(
      missing ?? '',
      /^No RabbitMQ answers at amqp:\/\/127\.0\.0\.1:\d+: REST, .*docker compose up -d rabbitmq/,
    );
    assert.doesNotMatch(missing!, /secret/);
    const production = loadConfig({
      NODE_ENV: 'production',
      API_KEY_ENCRYPTION_SECRET: '0123456789abcdefghijklmnopqrstuv',
      BATCH_SERVICE_RMQ_URL: url,
    });
    assert.equal(await missingBroker(production), null);
  });

  it('starts no database of its own when a DB_* variable is set, whether or not the server answers', async () => {
    const config = loadConfig({ DB_PORT: String(await closedPort()) });
    assert.deepEqual(await developmentDatabase(config), { server: null, notice: null });
  });
});
