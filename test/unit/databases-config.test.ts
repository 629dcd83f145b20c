import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/app-config';

const databases = (value: unknown) =>
  loadConfig({ BATCH_DATABASES: typeof value === 'string' ? value : JSON.stringify(value) }).databases;

/** The message of the ConfigError BATCH_DATABASES `value` stops the start with. */
function refusal(value: unknown): string {
  try {
    databases(value);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message;
  }
  assert.fail('accepted');
}

describe('BATCH_DATABASES', () => {
  it('none by default; a name to a URL, or to an object with its pool size and schemas', () => {
    assert.deepEqual(loadConfig({}).databases, []);
    const [billing, legacy] = databases({
      billing: 'postgres://svc:s3cret@10.0.0.5:5432/billing',
      legacy: {
        url: 'postgresql://svc@db.example/erp',
        poolSize: 8,
        targetSchemas: ['erp'],
        sourceSchemas: ['public', 'archive'],
      },
    });
    assert.deepEqual(
      { ...billing, url: undefined },
      {
        name: 'billing',
        url: undefined,
        where: '10.0.0.5:5432/billing',
        poolSize: 4,
        targetSchemas: ['public'],
        sourceSchemas: ['public'],
      },
    );
    assert.equal(billing.url, 'postgres://svc:s3cret@10.0.0.5:5432/billing');
    assert.deepEqual(
      [legacy.where, legacy.poolSize, legacy.targetSchemas, legacy.sourceSchemas],
      ['db.example:5432/erp', 8, ['erp'], ['public', 'archive']],
    );
  });

  it('stops the start naming the variable and the database, never the password', () => {
    const cases: [unknown, RegExp][] = [
      ['{not json', /must be a JSON object/],
      [['postgres://x/y'], /must be a JSON object/],
      [{ main: 'postgres://h/other' }, /cannot define "main"/],
      [{ Billing: 'postgres://h/b' }, /invalid database name "Billing"/],
      [{ billing: 'mysql://u:hunter2@h/b' }, /database "billing": has a "url" that is not postgres/],
      [{ billing: 'postgres://u:hunter2@h' }, /database "billing": has a "url" without a host or a database name/],
      [{ billing: { url: 'postgres://u:hunter2@h/b', poolSize: 0 } }, /"poolSize"/],
      [{ billing: { url: 'postgres://u:hunter2@h/b', sourceSchemas: ['batch'] } }, /must not name the schema "batch"/],
      [{ billing: { url: 'postgres://u:hunter2@h/b', targetSchemas: ['batch_ledger'] } }, /"batch_ledger"/],
      [{ billing: { url: 'postgres://u:hunter2@h/b', pool: 3 } }, /unknown field "pool"/],
      [{ billing: { poolSize: 3 } }, /needs "url"/],
    ];
    for (const [value, expected] of cases) {
      const message = refusal(value);
      assert.match(message, /^Invalid configuration: BATCH_DATABASES /);
      assert.match(message, expected);
      assert.doesNotMatch(message, /hunter2/);
    }
  });

  it('refuses two names for one database, the service’s own included', () => {
    assert.match(
      refusal({ a: 'postgres://u:p@h:5433/x', b: 'postgres://v:q@h:5433/x' }),
      /"a" and "b" are both h:5433\/x/,
    );
    assert.match(refusal({ again: 'postgres://u@127.0.0.1/batch_service' }), /"main" and "again"/);
  });
});
