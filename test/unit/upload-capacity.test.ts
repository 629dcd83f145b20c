import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/app-config';
import { httpHeadersOf } from '../../src/controllers/errors';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { BatchError } from '../../src/services/batch-error';
import { UploadCapacity } from '../../src/services/imports/upload-capacity';

const client = (id: string) => new AuthenticatedClient(id, `client-${id}`, false, ['*'], null);

/** RATE_LIMITED with a wait, whose HTTP answer says it in Retry-After. */
function rateLimited(error: unknown): boolean {
  assert.ok(error instanceof BatchError);
  assert.equal(error.code, 'RATE_LIMITED');
  assert.ok((error.details as { retryAfterMs: number }).retryAfterMs > 0);
  assert.deepEqual(httpHeadersOf(error), [['Retry-After', '1']]);
  return true;
}

describe('UploadCapacity', () => {
  it('admits uploads up to the per-client and per-process limits, and refuses the next at once', async () => {
    const capacity = new UploadCapacity(
      loadConfig({ BATCH_IMPORT_MAX_UPLOADS: '3', BATCH_IMPORT_MAX_CLIENT_UPLOADS: '2' }),
    );
    try {
      const a1 = capacity.admit(client('1'));
      const a2 = capacity.admit(client('1'));
      assert.throws(() => capacity.admit(client('1')), rateLimited, 'a third of one client');
      capacity.admit(client('2'));
      assert.throws(() => capacity.admit(client('3')), rateLimited, 'a fourth in the process');
      a1();
      a1(); // a release counts once
      capacity.admit(client('3'));
      assert.throws(() => capacity.admit(client('2')), /3 uploads in progress/, 'one place was freed, once');
      a2();
      capacity.admit(client('2'));
    } finally {
      await capacity.onModuleDestroy();
    }
  });

  it('never lets one client take more than the process', () => {
    const config = loadConfig({ BATCH_IMPORT_MAX_UPLOADS: '2', BATCH_IMPORT_MAX_CLIENT_UPLOADS: '5' });
    assert.deepEqual([config.uploads.maxUploads, config.uploads.maxClientUploads], [2, 2]);
  });
});

describe('httpHeadersOf', () => {
  it('answers Retry-After in whole seconds, at least one, and closes the connection of a stalled body', () => {
    const limited = (ms: number) => httpHeadersOf(new BatchError('RATE_LIMITED', 'm', { retryAfterMs: ms }));
    assert.deepEqual(
      [limited(1), limited(1000), limited(1001)],
      [[['Retry-After', '1']], [['Retry-After', '1']], [['Retry-After', '2']]],
    );
    assert.deepEqual(httpHeadersOf(new BatchError('REQUEST_TIMEOUT', 'm')), [['Connection', 'close']]);
    assert.deepEqual(httpHeadersOf(new BatchError('CONFLICT', 'm')), []);
  });
});
