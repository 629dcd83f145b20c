import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RpcParamtype } from '@nestjs/microservices/enums/rpc-paramtype.enum';
import { loadConfig } from '../../src/config/app-config';
import { OperationCreateDto, OperationsCreateDto } from '../../src/controllers/dto/operation.dto';
import { BatchErrorFilter } from '../../src/controllers/errors';
import { mayBeUnacceptable, payloadProblem, readRpcRequest } from '../../src/controllers/request-body';
import { parseExactly } from '../../src/services/exact-json';
import { RequestValidationPipe } from '../../src/controllers/validation-pipe';
import { BatchError } from '../../src/services/batch-error';
import type { CatalogService } from '../../src/services/storage/catalog.service';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { OperationValidator } from '../../src/services/ingest/operation-validator.service';
import { column, targetTable } from '../support/catalog-fixtures';

/**
 * Whatever a caller sends — any JSON, in any field, at any depth — is answered with one of the contract's codes for
 * bad requests, never INTERNAL: the RPC reader, the body checks, the DTO validation and the catalog checks are
 * run on random payloads as a request goes through them.
 */
const accounts = targetTable(
  'public.accounts',
  [
    column('id', 'int4', { sqlType: 'integer', notNull: true }),
    column('email', 'varchar', { sqlType: 'character varying(40)', typmod: 44 }),
    column('balance', 'numeric', { sqlType: 'numeric(10,2)', typmod: ((10 << 16) | 2) + 4 }),
    column('ratio', 'float8'),
    column('tags', 'text', { sqlType: 'text[]', isArray: true }),
    column('meta', 'jsonb'),
    column('due', 'timestamptz'),
    column('big', 'int8'),
    column('photo', 'bytea'),
    column('ref', 'uuid'),
    column('constructor', 'text'),
  ],
  { primaryKey: ['id'], uniqueKeys: [['id'], ['email']] },
);
const catalog = {
  findWithColumns: async (name: string) => (name === 'accounts' || name === 'public.accounts' ? accounts : null),
} as unknown as CatalogService;
const validator = new OperationValidator(catalog, loadConfig({}));
const pipe = new RequestValidationPipe();
const client = new AuthenticatedClient('1', 'caller', false, ['accounts'], null);
const CALLER_CODES = new Set([
  'VALIDATION_FAILED',
  'UNKNOWN_TARGET',
  'UNKNOWN_COLUMN',
  'FORBIDDEN',
  'PAYLOAD_TOO_LARGE',
]);

/** The codes a request body ends with (null: accepted), as the service's transports would answer it. */
async function answer(
  body: unknown,
  dto: typeof OperationCreateDto | typeof OperationsCreateDto,
): Promise<string | null> {
  try {
    const problem = payloadProblem(body);
    if (problem) return 'VALIDATION_FAILED';
    const request = await pipe.transform(body, { type: RpcParamtype.PAYLOAD as unknown as 'body', metatype: dto });
    const operations =
      dto === OperationsCreateDto ? (request as OperationsCreateDto).operations : [request as OperationCreateDto];
    await validator.validateAll(client, operations);
    return null;
  } catch (error) {
    return (new BatchErrorFilter() as unknown as { toBatchError(e: unknown): BatchError }).toBatchError(error).code;
  }
}

const value = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom(
    1e308 * 10,
    -Infinity,
    NaN,
    '\ud800',
    'x\u0000',
    2 ** 60,
    '2026-11-21T10:00:00',
    '2030-W01',
    { __proto__: null },
    [[1], 2],
  ),
);
const field = fc.constantFrom(
  'target',
  'type',
  'values',
  'key',
  'conflictKey',
  'idempotencyKey',
  'priority',
  'notBefore',
  'label',
  'constructor',
  '__proto__',
  'extra',
);
const column_ = fc.constantFrom(
  'id',
  'email',
  'balance',
  'ratio',
  'tags',
  'meta',
  'due',
  'big',
  'photo',
  'ref',
  'constructor',
  '__proto__',
  'toString',
  'nope',
  '',
);
const row = fc.dictionary(column_, value, { maxKeys: 6 });
const operation = fc
  .record(
    {
      target: fc.oneof(fc.constantFrom('accounts', 'public.accounts', 'batch.deferred', 'pg_catalog.pg_class'), value),
      type: fc.oneof(fc.constantFrom('insert', 'upsert', 'update', 'delete', 'increment'), value),
      values: fc.oneof(row, value),
      key: fc.oneof(row, value),
    },
    { requiredKeys: ['target', 'type'] },
  )
  .chain((base) => fc.dictionary(field, value, { maxKeys: 3 }).map((extra) => ({ ...base, ...extra })));

describe('hostile input (property): never INTERNAL', () => {
  it('answers every random single create with a contract code for callers, or accepts it', async () => {
    await fc.assert(
      fc.asyncProperty(operation, async (body) => {
        const code = await answer(JSON.parse(JSON.stringify(body) ?? 'null'), OperationCreateDto);
        assert.ok(code === null || CALLER_CODES.has(code), `${code} for ${JSON.stringify(body)?.slice(0, 300)}`);
      }),
      { numRuns: 3000, seed: 20261122 },
    );
  });

  it('answers every random bulk create the same way', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.record({ operations: fc.array(operation, { maxLength: 5 }) }), value),
        async (body) => {
          const code = await answer(JSON.parse(JSON.stringify(body) ?? 'null'), OperationsCreateDto);
          assert.ok(code === null || CALLER_CODES.has(code), `${code} for ${JSON.stringify(body)?.slice(0, 300)}`);
        },
      ),
      { numRuns: 1000, seed: 20261122 },
    );
  });

  it('reads a message without an id as an event, and refuses an id that is no string', () => {
    const event = readRpcRequest(Buffer.from('{"pattern":"createOperation","data":{"a":1}}'), 1024);
    assert.deepEqual(event, { pattern: 'createOperation', id: undefined, data: { a: 1 } });
    for (const id of ['42', '""', 'null', '"\\u0000"', `"${'x'.repeat(201)}"`]) {
      const read = readRpcRequest(Buffer.from(`{"pattern":"createOperation","id":${id},"data":{}}`), 1024);
      assert.ok('problem' in read && read.problem.code === 'VALIDATION_FAILED', id);
    }
  });

  it('refuses a number whose exponent is beyond any range, as a message and as a value', () => {
    for (const number of ['1e9007199254740993', '0e9007199254740993', '1e-9007199254740993', '-5E99999999999999999']) {
      const read = readRpcRequest(Buffer.from(`{"pattern":"createOperation","id":"1","data":{"v":${number}}}`), 1024);
      assert.ok('problem' in read && read.problem.code === 'VALIDATION_FAILED', number);
      assert.match(read.problem.message, /beyond any range/, number);
    }
  });

  it('refuses a number kept exactly where values or key must be an object, not as a column named "text"', async () => {
    for (const field of ['values', 'key'])
      for (const number of ['12345678901234567890', '1e400']) {
        const text = `{"target":"accounts","type":"update","values":{"email":"a"},"key":{"id":1},"${field}":${number}}`;
        assert.equal(await answer(parseExactly(text), OperationCreateDto), 'VALIDATION_FAILED', text);
      }
  });

  it('reads every random RPC message as a request or refuses it with VALIDATION_FAILED', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
          fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '')),
        ),
        (content) => {
          const read = readRpcRequest(content, 1024);
          assert.ok(
            !('problem' in read) ||
              read.problem.code === 'VALIDATION_FAILED' ||
              read.problem.code === 'PAYLOAD_TOO_LARGE',
          );
        },
      ),
      { numRuns: 3000, seed: 20261122 },
    );
  });

  it('refuses as the walk of the parsed message would: what its text shows nothing of is never walked wrongly', () => {
    const leaf = fc.constantFrom(
      '"\\ud800"',
      '"\\uDFFF"',
      '"\\ud83d\\ude00"', // a pair: well-formed
      '"\\u00e9"',
      '1e400',
      '-1E+400',
      ' 1e400',
      '-0.5e400',
      '1e131072', // beyond numeric's range
      '-1E+200000',
      ' 1e-16384',
      '12345678901234567890',
      '0.1234567890123456789',
      `${'9'.repeat(250)}e60`,
      '1e5',
      '"1e400"',
      '12.5',
      '"x"',
      'null',
      '9'.repeat(310),
    );
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('object')),
      array: fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
      object: fc
        .array(fc.tuple(fc.constantFrom('"a"', '"\\ud800"', '"b"'), tie('value')), { maxLength: 4 })
        .map((entries) => `{${entries.map(([key, value]) => `${key}:${value}`).join(',')}}`),
    })).value;
    fc.assert(
      fc.property(json, fc.constantFrom(':', ': ', ':\n\t'), (data, colon) => {
        const text = `{"pattern":"p","id":"i","data"${colon}${data}}`;
        const read = readRpcRequest(Buffer.from(text), 1 << 20);
        assert.equal('problem' in read, payloadProblem(parseExactly(text)) !== null, text);
      }),
      { numRuns: 3000, seed: 20261123 },
    );
  });

  it('walks no message for what its request id or its strings hold: a UUID with digits before an e is no exponent', () => {
    fc.assert(
      fc.property(fc.uuid(), fc.stringMatching(/^[a-z0-9.-]*$/), fc.integer(), (id, note, qty) => {
        const text = JSON.stringify({ pattern: 'createOperation', id, data: { target: 't', values: { qty, note } } });
        assert.equal(mayBeUnacceptable(text), false, text);
      }),
      { numRuns: 1000, seed: 20261123 },
    );
    assert.equal(mayBeUnacceptable('{"pattern":"p","id":"9a6c4a82-c6a2-4e0b-b869-633c38a2a55e","data":{}}'), false);
    assert.equal(mayBeUnacceptable('{"data":[1,2.5e3]}'), true);
  });
});
