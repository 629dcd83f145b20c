import amqp from 'amqplib';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BatchServiceClient, BatchServiceError } from '../../src/client';
import { createCaller, RMQ_URL, settleAll, TestDb, type Caller } from '../support/harness';
import { openRawRpc } from '../support/raw-rpc';
import { eventually, http, serviceEnv, ServiceProcess, startService } from '../support/service-process';
import { withoutBroker } from '../support/shared-services';

/**
 * The bad-input suite: hundreds of malformed requests over RPC and REST — wrong types, unknown and look-alike
 * identifiers, quoting and SQL injection in every string field, huge and deeply nested values, missing or
 * forged keys, other clients' ids. Each gets the contract's error code, the service stays up, and the
 * database holds exactly what it held before.
 */
type Expected = { code: string; status?: number };
interface Case {
  name: string;
  rest?: { method: string; path: string; body?: unknown; key?: string | null; raw?: string };
  /** `raw`: the whole message body as text, sent as it is (JSON.stringify could not write it). */
  rpc?: { pattern: string; data: unknown; key?: string | null; raw?: string };
  expect: Expected;
}

const INJECTIONS = [
  `'; DROP TABLE public.accounts; --`,
  `" OR 1=1 --`,
  `accounts"; DELETE FROM batch.clients; --`,
  `\\'); TRUNCATE batch.operations; --`,
  `$1); SELECT pg_sleep(10); --`,
  `accounts UNION SELECT * FROM batch.clients`,
  `public.accounts; COMMIT; DROP SCHEMA batch CASCADE`,
  `pg_catalog.pg_authid`,
];
const LOOK_ALIKE_TARGETS = [
  'Accounts',
  'accounts ',
  ' accounts',
  'аccounts',
  'accounts\u0000',
  'public.Accounts',
  'public..accounts',
  '"accounts"',
  'public."accounts"',
  'batch.clients',
  'batch.operations',
  'information_schema.tables',
  'pg_catalog.pg_class',
  'other.accounts',
  'accounts.id',
  '',
];
const LOOK_ALIKE_COLUMNS = [
  'Email',
  'email ',
  ' email',
  'emaiI',
  'e"mail',
  'email\u0000',
  'ctid',
  'xmin',
  'oid',
  '*',
  'id, email',
  'EMAIL',
];

const insert = (values: unknown, extra: Record<string, unknown> = {}) => ({
  target: 'accounts',
  type: 'insert',
  values,
  ...extra,
});

describe('bad input over RPC and REST (built service)', () => {
  if (withoutBroker()) return;
  let service: ServiceProcess;
  let db: TestDb;
  let alice: Caller;
  let bob: Caller;
  let bobsOperation: string;
  let alicesCompleted: string;
  let revokedKey: string;
  let broker: amqp.ChannelModel;
  let channel: amqp.Channel;
  let replyQueue: string;
  let replies: Map<string, { err?: { code: string } }>;

  before(async () => {
    service = await startService(serviceEnv());
    db = new TestDb(service.env.DB_NAME);
    await db.query(`CREATE TABLE public.accounts (id int PRIMARY KEY, email varchar(40) NOT NULL UNIQUE, balance numeric(10,2), tags text[], meta jsonb, opened date,
                                                  ratio float8, due timestamptz, big bigint, photo bytea, n52 numeric(5,2),
                                                  code varchar(5), flag boolean, qty int, grid int[], stamp timetz)`);
    await db.query(`CREATE TABLE public.secret_stuff (id int PRIMARY KEY)`);
    alice = await createCaller(service, 'alice', ['accounts']);
    bob = await createCaller(service, 'bob', ['accounts']);
    // settled one after the other, in executions of their own: bob's is bob's alone
    alicesCompleted = (await alice.rpc.createOperation(insert({ id: 1, email: 'a@x' }) as never)).id;
    await settleAll(db, alice);
    bobsOperation = (await bob.rpc.createOperation(insert({ id: 2, email: 'b@x' }) as never)).id;
    await settleAll(db, bob);
    const revoked = await http<{ id: string; apiKey: string }>(service, 'POST', '/api/clients', service.adminKey, {
      name: 'gone',
      targets: ['*'],
    });
    revokedKey = revoked.body.apiKey;
    assert.equal((await http(service, 'DELETE', `/api/clients/${revoked.body.id}`, service.adminKey)).status, 204);
    ({ connection: broker, channel, replyQueue, replies } = await openRawRpc<{ err?: { code: string } }>());
  });

  after(async () => {
    await broker?.close();
    await alice?.close();
    await bob?.close();
    await db?.close();
    await service?.destroy();
  });

  /** Everything the service stores, and the targets, as one fingerprint. */
  async function fingerprint(): Promise<string> {
    const tables = [
      'batch.operations',
      'batch.deferred',
      'batch.streams',
      'batch.outcomes',
      'batch.settled_runs',
      'batch.clients',
      'batch.outbox',
      'batch.chunks',
      'batch.chunk_steps',
      'public.accounts',
      'public.secret_stuff',
    ];
    const parts = await Promise.all(
      tables.map((t) =>
        db.query<{ f: string }>(`SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS f FROM ${t} x`),
      ),
    );
    return (
      parts.map((p) => p[0].f).join(',') +
      (
        await db.query<{ f: string }>(
          `SELECT string_agg(tablename, ',' ORDER BY tablename) AS f FROM pg_tables WHERE schemaname IN ('public', 'batch')`,
        )
      )[0].f
    );
  }

  function cases(): Case[] {
    const list: Case[] = [];
    const create = (name: string, operation: unknown, code: string) => {
      list.push({
        name: `RPC createOperation: ${name}`,
        rpc: { pattern: 'createOperation', data: operation },
        expect: { code },
      });
      list.push({
        name: `REST POST /api/operations: ${name}`,
        rest: { method: 'POST', path: '/api/operations', body: operation },
        expect: { code },
      });
    };
    // wrong types and shapes
    for (const target of [1, null, [], {}, true])
      create(`target ${JSON.stringify(target)}`, insert({ id: 9, email: 'z@x' }, { target }), 'VALIDATION_FAILED');
    for (const type of ['merge', 'INSERT', 1, null, ''])
      create(`type ${JSON.stringify(type)}`, insert({ id: 9, email: 'z@x' }, { type }), 'VALIDATION_FAILED');
    for (const values of ['x', 1, [], [1, 2], true])
      create(`values ${JSON.stringify(values)}`, insert(values), 'VALIDATION_FAILED');
    for (const priority of [101, -101, 1.5, '1', 'high'])
      create(
        `priority ${JSON.stringify(priority)}`,
        insert({ id: 9, email: 'z@x' }, { priority }),
        'VALIDATION_FAILED',
      );
    for (const notBefore of ['tomorrow', 123, '2026-13-01T00:00:00Z', '2026-11-21 10:00'])
      create(
        `notBefore ${JSON.stringify(notBefore)}`,
        insert({ id: 9, email: 'z@x' }, { notBefore }),
        'VALIDATION_FAILED',
      );
    for (const idempotencyKey of ['', 'k'.repeat(201), 5, ['k'], 'k\u0000ey'])
      create(
        `idempotencyKey ${JSON.stringify(idempotencyKey).slice(0, 20)}`,
        insert({ id: 9, email: 'z@x' }, { idempotencyKey }),
        'VALIDATION_FAILED',
      );
    for (const label of ['l'.repeat(101), {}, 7, 'la\u0000bel'])
      create(
        `label ${JSON.stringify(label).slice(0, 20)}`,
        insert({ id: 9, email: 'z@x' }, { label }),
        'VALIDATION_FAILED',
      );
    for (const conflictKey of ['id', [1], [], Array(33).fill('id')])
      create(
        `conflictKey ${JSON.stringify(conflictKey).slice(0, 20)}`,
        { ...insert({ id: 9, email: 'z@x' }), type: 'upsert', conflictKey },
        'VALIDATION_FAILED',
      );
    create('an unknown field', insert({ id: 9, email: 'z@x' }, { sql: 'SELECT 1' }), 'VALIDATION_FAILED');
    create('update without key', { target: 'accounts', type: 'update', values: { email: 'q@x' } }, 'VALIDATION_FAILED');
    create(
      'delete with values',
      { target: 'accounts', type: 'delete', key: { id: 1 }, values: { id: 1 } },
      'VALIDATION_FAILED',
    );
    create('key not a unique key', { target: 'accounts', type: 'delete', key: { balance: 1 } }, 'VALIDATION_FAILED');
    create(
      'increment of text',
      { target: 'accounts', type: 'increment', key: { id: 1 }, values: { email: 1 } },
      'VALIDATION_FAILED',
    );
    // values the column types refuse
    for (const [values, why] of [
      [{ id: 'nine', email: 'z@x' }, 'id not an integer'],
      [{ id: 2 ** 31, email: 'z@x' }, 'id out of range'],
      [{ id: 1.5, email: 'z@x' }, 'id a fraction'],
      [{ id: 9, email: 'z'.repeat(41) }, 'email too long'],
      [{ id: 9, email: null }, 'email null'],
      [{ id: 9 }, 'email missing'],
      [{ id: 9, email: 'z@x', balance: 1e12 }, 'balance out of range'],
      [{ id: 9, email: 'z@x', balance: 'lots' }, 'balance not a number'],
      [{ id: 9, email: 'z@x', opened: '2026-02-30' }, 'date not on the calendar'],
      [{ id: 9, email: 'z@x', tags: 'x' }, 'array not an array'],
      [{ id: 9, email: 'z@x', tags: [['a'], 'b'] }, 'a ragged array'],
      [{ id: 9, email: 'z@x', tags: [['a'], ['b', 'c']] }, 'sub-arrays of different lengths'],
      [{ id: 9, email: { $gt: '' } }, 'an object for text'],
      [{ id: 9, email: 'z\u0000@x' }, 'a NUL character'],
    ] as const)
      create(why, insert(values), 'VALIDATION_FAILED');
    // huge and deeply nested
    let nested: unknown = 'deep';
    for (let i = 0; i < 40; i++) nested = { n: nested };
    create('jsonb nested 40 levels', insert({ id: 9, email: 'z@x', meta: nested }), 'VALIDATION_FAILED');
    let deeper: unknown = [];
    for (let i = 0; i < 40; i++) deeper = [deeper];
    create('array nested 40 levels', insert({ id: 9, email: 'z@x', tags: deeper }), 'VALIDATION_FAILED');
    create(
      '2000 columns',
      insert(Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`c${i}`, i]))),
      'VALIDATION_FAILED',
    );
    create(
      'a 2 MB jsonb value',
      insert({ id: 9, email: 'z@x', meta: { blob: 'x'.repeat(2 * 1024 * 1024) } }),
      'VALIDATION_FAILED',
    );
    create(
      'a 6 MB request',
      insert({ id: 9, email: 'z@x', meta: { blob: 'x'.repeat(6 * 1024 * 1024) } }),
      'PAYLOAD_TOO_LARGE',
    );
    const bulk = (n: number) => ({
      operations: Array.from({ length: n }, (_, i) => insert({ id: 1000 + i, email: `${i}@x` })),
    });
    list.push({
      name: 'RPC createOperations: 1001 operations',
      rpc: { pattern: 'createOperations', data: bulk(1001) },
      expect: { code: 'PAYLOAD_TOO_LARGE' },
    });
    list.push({
      name: 'REST bulk: 1001 operations',
      rest: { method: 'POST', path: '/api/operations/bulk', body: bulk(1001) },
      expect: { code: 'PAYLOAD_TOO_LARGE' },
    });
    for (const operations of [[], 'x', null, [1], [null]]) {
      list.push({
        name: `RPC createOperations: ${JSON.stringify(operations)}`,
        rpc: { pattern: 'createOperations', data: { operations } },
        expect: { code: 'VALIDATION_FAILED' },
      });
      list.push({
        name: `REST bulk: ${JSON.stringify(operations)}`,
        rest: { method: 'POST', path: '/api/operations/bulk', body: { operations } },
        expect: { code: 'VALIDATION_FAILED' },
      });
    }
    const oneBad = { operations: [insert({ id: 50, email: 'ok@x' }), insert({ id: 51, email: 'ok2@x', nope: 1 })] };
    list.push({
      name: 'RPC createOperations: one bad among good',
      rpc: { pattern: 'createOperations', data: oneBad },
      expect: { code: 'UNKNOWN_COLUMN' },
    });
    list.push({
      name: 'REST bulk: one bad among good',
      rest: { method: 'POST', path: '/api/operations/bulk', body: oneBad },
      expect: { code: 'UNKNOWN_COLUMN' },
    });
    // unknown, look-alike and injected identifiers
    for (const target of [...LOOK_ALIKE_TARGETS, ...INJECTIONS])
      create(
        `target ${JSON.stringify(target)}`,
        insert({ id: 9, email: 'z@x' }, { target }),
        target === '' ? 'VALIDATION_FAILED' : 'UNKNOWN_TARGET',
      );
    create('a target not granted', { target: 'secret_stuff', type: 'insert', values: { id: 1 } }, 'FORBIDDEN');
    for (const column of [...LOOK_ALIKE_COLUMNS, ...INJECTIONS]) {
      create(
        `column ${JSON.stringify(column)} in values`,
        insert({ id: 9, email: 'z@x', [column]: 1 }),
        'UNKNOWN_COLUMN',
      );
      create(
        `column ${JSON.stringify(column)} in key`,
        { target: 'accounts', type: 'delete', key: { [column]: 1 } },
        'UNKNOWN_COLUMN',
      );
    }
    for (const column of INJECTIONS)
      create(
        `conflictKey ${JSON.stringify(column)}`,
        { ...insert({ id: 9, email: 'z@x' }), type: 'upsert', conflictKey: [column] },
        'UNKNOWN_COLUMN',
      );
    for (const injection of INJECTIONS) {
      create(`injection in a typed value`, insert({ id: injection, email: 'z@x' }), 'VALIDATION_FAILED');
      create(`injection in type`, insert({ id: 9, email: 'z@x' }, { type: injection }), 'VALIDATION_FAILED');
      create(`injection in notBefore`, insert({ id: 9, email: 'z@x' }, { notBefore: injection }), 'VALIDATION_FAILED');
      create(`injection in priority`, insert({ id: 9, email: 'z@x' }, { priority: injection }), 'VALIDATION_FAILED');
    }
    // ids: malformed, injected, missing, other clients'
    for (const id of [
      '1 OR 1=1',
      '1; DROP TABLE batch.operations',
      '-1',
      'abc',
      '1.0',
      '9'.repeat(30),
      `${INJECTIONS[0]}`,
      '0x10',
    ]) {
      list.push({
        name: `RPC getOperation ${id}`,
        rpc: { pattern: 'getOperation', data: { id } },
        expect: { code: 'VALIDATION_FAILED' },
      });
      list.push({
        name: `RPC cancelOperation ${id}`,
        rpc: { pattern: 'cancelOperation', data: { id } },
        expect: { code: 'VALIDATION_FAILED' },
      });
      list.push({
        name: `REST GET operation ${id}`,
        rest: { method: 'GET', path: `/api/operations/${encodeURIComponent(id)}` },
        expect: { code: 'VALIDATION_FAILED' },
      });
      list.push({
        name: `REST retry ${id}`,
        rest: { method: 'POST', path: `/api/operations/${encodeURIComponent(id)}/retry` },
        expect: { code: 'VALIDATION_FAILED' },
      });
    }
    for (const data of [{}, { id: 5 }, { id: null }, { id: ['1'] }, 'x', null]) {
      list.push({
        name: `RPC getOperation ${JSON.stringify(data)}`,
        rpc: { pattern: 'getOperation', data },
        expect: { code: 'VALIDATION_FAILED' },
      });
    }
    list.push({
      name: 'RPC getOperation of nobody',
      rpc: { pattern: 'getOperation', data: { id: '999999999' } },
      expect: { code: 'NOT_FOUND' },
    });
    list.push({
      name: 'REST GET operation of nobody',
      rest: { method: 'GET', path: '/api/operations/999999999' },
      expect: { code: 'NOT_FOUND' },
    });
    const others = () => bobsOperation;
    list.push({
      name: 'RPC getOperation of another client',
      rpc: { pattern: 'getOperation', data: { id: '<bob>' } },
      expect: { code: 'FORBIDDEN' },
    });
    list.push({
      name: 'RPC cancelOperation of another client',
      rpc: { pattern: 'cancelOperation', data: { id: '<bob>' } },
      expect: { code: 'FORBIDDEN' },
    });
    for (const suffix of ['', '/cancel', '/retry']) {
      list.push({
        name: `REST ${suffix || 'GET'} another client's operation`,
        rest: { method: suffix ? 'POST' : 'GET', path: `/api/operations/<bob>${suffix}` },
        expect: { code: 'FORBIDDEN' },
      });
    }
    list.push({
      name: 'REST execution of another client',
      rest: { method: 'GET', path: '/api/executions/<bob-execution>' },
      expect: { code: 'NOT_FOUND' },
    });
    list.push({
      name: 'RPC cancel of a settled operation',
      rpc: { pattern: 'cancelOperation', data: { id: '<alice>' } },
      expect: { code: 'CONFLICT' },
    });
    list.push({
      name: 'REST retry of a completed operation',
      rest: { method: 'POST', path: '/api/operations/<alice>/retry' },
      expect: { code: 'CONFLICT' },
    });
    // list queries
    for (const query of [
      'status=DONE',
      `status=${encodeURIComponent("PENDING' OR '1'='1")}`,
      'limit=0',
      'limit=501',
      'limit=1;--',
      'cursor=abc',
      `cursor=${encodeURIComponent(INJECTIONS[0])}`,
      'nope=1',
      'label=' + 'l'.repeat(101),
      'label=a%00b',
      'target=a%00b',
    ]) {
      list.push({
        name: `REST list ?${query.slice(0, 30)}`,
        rest: { method: 'GET', path: `/api/operations?${query}` },
        expect: { code: 'VALIDATION_FAILED' },
      });
    }
    // keys: missing, forged, revoked, oversized, and admin-only routes
    for (const key of [null, '', 'bsk_forged', 'x'.repeat(10_000), INJECTIONS[0], '<revoked>']) {
      const name = key === null ? 'no key' : `key ${JSON.stringify(key).slice(0, 20)}`;
      list.push({
        name: `RPC ${name}`,
        rpc: { pattern: 'createOperation', data: insert({ id: 9, email: 'z@x' }), key },
        expect: { code: 'UNAUTHENTICATED' },
      });
      list.push({
        name: `REST ${name}`,
        rest: { method: 'POST', path: '/api/operations', body: insert({ id: 9, email: 'z@x' }), key },
        expect: { code: 'UNAUTHENTICATED' },
      });
      list.push({
        name: `REST list, ${name}`,
        rest: { method: 'GET', path: '/api/operations', key },
        expect: { code: 'UNAUTHENTICATED' },
      });
    }
    for (const [method, path, body] of [
      ['POST', '/api/clients', { name: 'mallory', targets: ['*'], admin: true }],
      ['GET', '/api/clients', undefined],
      ['POST', '/api/clients/1/rotate-key', undefined],
      ['DELETE', '/api/clients/1', undefined],
      ['PATCH', '/api/clients/1', { admin: true }],
    ] as const) {
      list.push({
        name: `REST ${method} ${path} as a client`,
        rest: { method, path, body },
        expect: { code: 'FORBIDDEN' },
      });
    }
    for (const body of [
      { name: 'bad name!', targets: ['*'] },
      { name: 'x', targets: [] },
      { name: 'x', targets: '*' },
      { name: 'x', targets: ['*'], admin: 'yes' },
      { name: 'x', targets: ['*'], rateLimitPerSecond: 0 },
      { name: INJECTIONS[0], targets: ['*'] },
      { name: 'x', targets: ['a\u0000b'] },
    ]) {
      list.push({
        name: `REST admin POST /api/clients ${JSON.stringify(body).slice(0, 30)}`,
        rest: { method: 'POST', path: '/api/clients', body, key: '<admin>' },
        expect: { code: 'VALIDATION_FAILED' },
      });
    }
    for (const body of [
      { targets: [] },
      { targets: '*' },
      { admin: 'yes' },
      { rateLimitPerSecond: 0 },
      { rateLimitPerSecond: 1.5 },
      { targets: ['a\u0000b'] },
    ]) {
      list.push({
        name: `REST admin PATCH /api/clients/1 ${JSON.stringify(body)}`,
        rest: { method: 'PATCH', path: '/api/clients/1', body, key: '<admin>' },
        expect: { code: 'VALIDATION_FAILED' },
      });
    }
    // unreadable bodies
    for (const raw of [
      '{"target": "accounts", ',
      'null',
      '"a string"',
      '[]',
      '{"target": "accounts", "type": "insert", "values": {"id": 1, "id": 2, "email": NaN}}',
    ]) {
      list.push({
        name: `REST raw body ${raw.slice(0, 20)}`,
        rest: { method: 'POST', path: '/api/operations', raw },
        expect: { code: 'VALIDATION_FAILED' },
      });
    }
    // values that cannot be taken exactly: refused, never stored as something else
    const raw = (name: string, body: string, code: string, bulk = false) => {
      list.push({
        name: `RPC raw: ${name}`,
        rpc: {
          pattern: bulk ? 'createOperations' : 'createOperation',
          data: null,
          raw: `{"pattern":"${bulk ? 'createOperations' : 'createOperation'}","id":"${randomUUID()}","data":${body}}`,
        },
        expect: { code },
      });
      list.push({
        name: `REST raw: ${name}`,
        rest: { method: 'POST', path: bulk ? '/api/operations/bulk' : '/api/operations', raw: body },
        expect: { code },
      });
    };
    const row = (fields: string) => `{"target":"accounts","type":"insert","values":{"id":9,"email":"z@x"${fields}}}`;
    raw('1e400 for a float column', row(',"ratio":1e400'), 'VALIDATION_FAILED');
    raw('-1e200000 inside jsonb (beyond numeric)', row(',"meta":{"n":-1e200000}'), 'VALIDATION_FAILED');
    raw('a bigint beyond its range by one, as a JSON number', row(',"big":9223372036854775808'), 'VALIDATION_FAILED');
    raw('a lone surrogate in a value', row(',"meta":{"s":"\\ud800"}'), 'VALIDATION_FAILED');
    raw('an exponent beyond a safe integer', row(',"meta":{"n":1e9007199254740993}'), 'VALIDATION_FAILED');
    raw('values a number', '{"target":"accounts","type":"insert","values":12345678901234567890}', 'VALIDATION_FAILED');
    raw('a key a number', '{"target":"accounts","type":"delete","key":1e400}', 'VALIDATION_FAILED');
    raw(
      'a lone surrogate in a text column',
      `{"target":"accounts","type":"insert","values":{"id":9,"email":"\\udc00"}}`,
      'VALIDATION_FAILED',
    );
    raw(
      'a lone surrogate in a label',
      `{"target":"accounts","type":"insert","values":{"id":9,"email":"z@x"},"label":"x\\ud83d"}`,
      'VALIDATION_FAILED',
    );
    raw('a lone surrogate in a field name', row(',"\\ud800":1'), 'VALIDATION_FAILED');
    raw('JSON nested 20,000 deep', row(`,"meta":${'['.repeat(20_000)}${']'.repeat(20_000)}`), 'VALIDATION_FAILED');
    raw('"constructor" in values', row(',"constructor":1'), 'UNKNOWN_COLUMN');
    raw('"toString" in values', row(',"toString":1'), 'UNKNOWN_COLUMN');
    raw('"__proto__" in values', row(',"__proto__":{"id":1}'), 'UNKNOWN_COLUMN');
    raw('"__proto__" in key', `{"target":"accounts","type":"delete","key":{"__proto__":1}}`, 'UNKNOWN_COLUMN');
    raw(
      'a top-level "constructor" field',
      `{"target":"accounts","type":"insert","values":{"id":9,"email":"z@x"},"constructor":"x"}`,
      'VALIDATION_FAILED',
    );
    raw(
      'a top-level "__proto__" field',
      `{"target":"accounts","type":"insert","values":{"id":9,"email":"z@x"},"__proto__":{"label":"x"}}`,
      'VALIDATION_FAILED',
    );
    raw(
      '"constructor" in a bulk operation',
      `{"operations":[{"target":"accounts","type":"insert","values":{"id":9,"email":"z@x"},"constructor":"x"}]}`,
      'VALIDATION_FAILED',
      true,
    );
    list.push({
      name: 'RPC raw: a lone surrogate in the request id',
      rpc: {
        pattern: 'createOperation',
        data: null,
        raw: `{"pattern":"createOperation","id":"\\ud800","data":${row('')}}`,
      },
      expect: { code: 'VALIDATION_FAILED' },
    });
    for (const notBefore of [
      '2030-W01',
      '2030-100',
      '2026-11-21T10:00:00',
      '2026-11-21',
      '2026-11-21T10:00:00+25:00',
      new Date(Date.now() + 400 * 86_400_000).toISOString(),
    ]) {
      create(`notBefore ${notBefore}`, insert({ id: 9, email: 'z@x' }, { notBefore }), 'VALIDATION_FAILED');
    }
    create(
      'timestamptz without a zone',
      insert({ id: 9, email: 'z@x', due: '2026-11-21T10:00:00' }),
      'VALIDATION_FAILED',
    );
    create(
      'bigint beyond its range as a JSON number',
      insert({ id: 9, email: 'z@x', big: 2 ** 64 }),
      'VALIDATION_FAILED',
    );
    create(
      'a 2 MB bytea value',
      insert({ id: 9, email: 'z@x', photo: `\\x${'ab'.repeat(1024 * 1024)}` }),
      'VALIDATION_FAILED',
    );
    create(
      'a 2 MB array',
      insert({ id: 9, email: 'z@x', tags: Array.from({ length: 2048 }, () => 'x'.repeat(1024)) }),
      'VALIDATION_FAILED',
    );
    // values accepted at create before and refused when applied: now refused at create
    const edges: [string, Record<string, unknown>][] = [
      ['numeric(5,2) Infinity', { n52: 'Infinity' }],
      ['numeric(5,2) -Infinity', { n52: '-Infinity' }],
      ['numeric(5,2) +NaN', { n52: '+NaN' }],
      ['numeric NaN', { balance: 'NaN' }],
      ['integer text after NBSP', { qty: '\u00a012' }],
      ['integer text before U+2008', { qty: '12\u2008' }],
      ['integer text after U+2028', { qty: '\u202812' }],
      ['integer text after a BOM', { qty: '\ufeff12' }],
      ['boolean text after NBSP', { flag: '\u00a0true' }],
      ['float text after a BOM', { ratio: '\ufeff1.5' }],
      ['varchar(5) given the JSON number 1e21', { code: 1e21 }],
      ['an offset of +16:00', { due: '2026-01-01T00:00:00+16:00' }],
      ['an offset of +14:60', { due: '2026-01-01T00:00:00+14:60' }],
      ['an offset of +99', { due: '2026-01-01T00:00:00+99' }],
      ['+infinity for a date', { opened: '+infinity' }],
      ['an empty sub-array', { grid: [[]] }],
      ['an array of 7 dimensions', { grid: [[[[[[[1]]]]]]] }],
      ['a time with an offset of +16', { stamp: '08:00:00+16:00' }],
    ];
    for (const [name, values] of edges) create(name, insert({ id: 9, email: 'z@x', ...values }), 'VALIDATION_FAILED');
    create(
      'notBefore before the year 1 in UTC',
      insert({ id: 9, email: 'z@x' }, { notBefore: '0001-01-01T00:00:00+14:00' }),
      'VALIDATION_FAILED',
    );
    create(
      'an increment by NaN',
      { target: 'accounts', type: 'increment', key: { id: 1 }, values: { ratio: 'NaN' } },
      'VALIDATION_FAILED',
    );
    raw('a number beyond numeric in a numeric column', row(',"balance":1e131072'), 'VALIDATION_FAILED');
    // the service's own tables are never targets
    for (const target of ['migrations', 'public.migrations', 'batch.migrations', 'batch.deferred']) {
      create(`target ${target}`, { target, type: 'insert', values: { id: 1 } }, 'UNKNOWN_TARGET');
    }
    return list.map((c) => resolveIds(c, others()));
  }

  function resolveIds(c: Case, bobs: string): Case {
    const swap = (text: string) =>
      text.replace('<bob>', bobs).replace('<alice>', alicesCompleted).replace('<bob-execution>', bobsExecution);
    if (c.rest) c.rest.path = swap(c.rest.path);
    if (c.rpc && typeof (c.rpc.data as { id?: unknown })?.id === 'string')
      (c.rpc.data as { id: string }).id = swap((c.rpc.data as { id: string }).id);
    return c;
  }

  let bobsExecution = '';

  async function send(c: Case): Promise<string> {
    const keyFor = (key: string | null | undefined) =>
      key === undefined ? alice.apiKey : key === '<revoked>' ? revokedKey : key === '<admin>' ? service.adminKey : key;
    if (c.rest) {
      const key = keyFor(c.rest.key);
      const response = await fetch(service.url + c.rest.path, {
        method: c.rest.method,
        headers: { ...(key === null ? {} : { 'x-api-key': key }), 'content-type': 'application/json' },
        body: c.rest.raw ?? (c.rest.body === undefined ? undefined : JSON.stringify(c.rest.body)),
      });
      const body = (await response.json()) as { status: string; code: string; message: string };
      assert.equal(body.status, 'error', `${c.name}: ${JSON.stringify(body).slice(0, 300)}`);
      assert.equal(typeof body.message, 'string');
      const statuses: Record<string, number> = {
        VALIDATION_FAILED: 400,
        UNKNOWN_TARGET: 400,
        UNKNOWN_COLUMN: 400,
        UNAUTHENTICATED: 401,
        FORBIDDEN: 403,
        NOT_FOUND: 404,
        CONFLICT: 409,
        PAYLOAD_TOO_LARGE: 413,
      };
      assert.equal(response.status, statuses[body.code], `${c.name}: HTTP status of ${body.code}`);
      return body.code;
    }
    const key = keyFor(c.rpc!.key);
    if (c.rpc!.raw !== undefined) return sendRaw(c.rpc!.raw, key);
    const rpc =
      key === alice.apiKey
        ? alice.rpc
        : new BatchServiceClient({
            url: RMQ_URL,
            queue: service.env.BATCH_SERVICE_RMQ_QUEUE,
            apiKey: key ?? '',
            timeoutMs: 15_000,
          });
    try {
      await (rpc as unknown as { call(pattern: string, data: unknown): Promise<unknown> }).call(
        c.rpc!.pattern,
        c.rpc!.data,
      );
      return 'OK';
    } catch (error) {
      assert.ok(error instanceof BatchServiceError, `${c.name}: ${String(error)}`);
      return error.code;
    } finally {
      if (rpc !== alice.rpc) await rpc.close();
    }
  }

  /** A message body sent as it is over AMQP; the code of its reply. */
  async function sendRaw(body: string, key: string | null): Promise<string> {
    const correlationId = randomUUID();
    channel.sendToQueue(service.env.BATCH_SERVICE_RMQ_QUEUE, Buffer.from(body), {
      replyTo: replyQueue,
      correlationId,
      headers: key === null ? {} : { 'x-api-key': key },
    });
    const reply = await eventually(async () => replies.get(correlationId), 15_000, 'the reply');
    return reply.err?.code ?? 'OK';
  }

  it('refuses every malformed request with the contract error, stays up, and stores nothing', async (t) => {
    bobsExecution = (
      await db.query<{ chunk_id: string }>(`SELECT chunk_id FROM batch.operation_states WHERE id = $1`, [bobsOperation])
    )[0].chunk_id;
    const before = await fingerprint();
    const all = cases();
    assert.ok(all.length >= 200, `${all.length} cases`);
    const wrong: string[] = [];
    for (const c of all) {
      const code = await send(c).catch((error: Error) => `threw ${error.message}`);
      if (code !== c.expect.code) wrong.push(`${c.name}: expected ${c.expect.code}, got ${code}`);
    }
    t.diagnostic(`${all.length} malformed requests`);
    assert.deepEqual(wrong, []);
    assert.equal(service.process.exitCode, null, 'the service is still running');
    assert.equal((await http(service, 'GET', '/api/targets', alice.apiKey)).status, 200);
    assert.equal(await fingerprint(), before, 'the database holds exactly what it held before');
  });

  it('reads a JSON body as UTF-8 only, and gives no budget to a body announced by a caller without a key', async () => {
    // the lone surrogate itself, not its escape (as JSON.stringify writes it), which only another charset can carry
    const body = JSON.stringify(insert({ id: 9, email: 'z@x', meta: { s: '\ud800' } })).replace('\\ud800', '\ud800');
    const utf16 = await fetch(`${service.url}/api/operations`, {
      method: 'POST',
      headers: { 'x-api-key': alice.apiKey, 'content-type': 'application/json; charset=utf-16le' },
      body: Buffer.from(body, 'utf16le'),
    });
    assert.deepEqual([utf16.status, ((await utf16.json()) as { code: string }).code], [400, 'VALIDATION_FAILED']);
    // bodies of the largest size announced without a key, and never sent: more than the whole budget together
    const max = 5 * 1024 * 1024; // BATCH_MAX_MESSAGE_BYTES; 8 of them are more than BATCH_MAX_BYTES_IN_FLIGHT
    const announce = (key: string | null, length: number) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(new URL(service.url).port), '127.0.0.1');
        let answer = '';
        socket.on('data', (data) => (answer += data.toString()));
        socket.on('close', () => resolve(answer.split('\r\n')[0]));
        socket.on('error', reject);
        socket.write(
          `POST /api/operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n` +
            (key === null ? '' : `x-api-key: ${key}\r\n`) +
            '\r\n',
        );
      });
    const answers = await Promise.all(Array.from({ length: 8 }, () => announce(null, max)));
    assert.deepEqual(
      new Set(answers),
      new Set(['HTTP/1.1 401 Unauthorized']),
      'answered at once, the connection closed',
    );
    assert.equal(
      await announce(alice.apiKey, 1e12),
      'HTTP/1.1 413 Payload Too Large',
      'over the limit: refused at once',
    );
    const admitted = await http(service, 'POST', '/api/operations', alice.apiKey, {});
    assert.equal(admitted.status, 400, 'a body of a caller with a key is read (not 429: no budget was taken)');
  });

  it("never lists the service's own tables as targets, and names no client in the keyless metrics", async () => {
    const targets = await http<{ name: string }[]>(service, 'GET', '/api/targets', service.adminKey);
    assert.deepEqual(targets.body.map((t) => t.name).sort(), ['public.accounts', 'public.secret_stuff']);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(
      metrics,
      /batch_operations_created_total\{database="main",target="public.accounts",type="insert"\} \d/,
    );
    assert.doesNotMatch(metrics, /alice|bob/);
  });

  it('stores quoting and SQL in values as plain data, and applies it verbatim', async () => {
    const { operations } = await alice.rpc.createOperations(
      INJECTIONS.map((text, i) => ({
        target: 'accounts',
        type: 'insert' as const,
        values: { id: 100 + i, email: text.slice(0, 40), meta: { text } },
        label: text.slice(0, 100),
        idempotencyKey: text,
      })),
    );
    await settleAll(db, alice);
    assert.ok(operations.every((o) => alice.notified.get(o.id)?.status === 'COMPLETED'));
    const rows = await db.query<{ email: string; text: string }>(
      `SELECT email, meta->>'text' AS text FROM public.accounts WHERE id >= 100 ORDER BY id`,
    );
    assert.deepEqual(
      rows.map((r) => r.text),
      INJECTIONS,
    );
    assert.equal(
      await db.count(`SELECT count(*) AS n FROM batch.clients`),
      4,
      'no client was deleted (admin, alice, bob, the revoked one)',
    );
  });
});
