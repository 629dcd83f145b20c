import fc from 'fast-check';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IsString, Validate, ValidatorConstraint, ValidatorConstraintInterface } from 'class-validator';
import { RpcParamtype } from '@nestjs/microservices/enums/rpc-paramtype.enum';
import {
  OperationCreateDto,
  OperationIdDto,
  OperationListQueryDto,
  OperationsCreateDto,
} from '../../src/controllers/dto/operation.dto';
import { JobLaunchDto, JobLaunchRpcDto } from '../../src/controllers/dto/job.dto';
import { acceptedAsSent } from '../../src/controllers/validation-precheck';
import { RequestValidationPipe } from '../../src/controllers/validation-pipe';
import type { BatchError } from '../../src/services/batch-error';

/**
 * The precheck only ever says "accepted as sent": whatever it accepts, class-transformer and class-validator (the
 * pipe's full way) accept too and make into the same request. And it does accept the
 * requests callers send, or it would save nothing.
 */
const pipe = new RequestValidationPipe();
const payload = (metatype: object) => ({
  type: RpcParamtype.PAYLOAD as unknown as 'body',
  metatype: metatype as never,
});

/** What the full way makes of a body (as JSON), or null when it refuses it. */
async function fullWayResult(body: unknown, metatype: object): Promise<unknown> {
  try {
    return JSON.parse(JSON.stringify(await pipe.transformWithRowsAside(structuredClone(body), payload(metatype))));
  } catch {
    return null;
  }
}

/** As JSON.parse gives it to the pipe (fast-check also makes objects without a prototype). */
const asReceived = (body: object): object => JSON.parse(JSON.stringify(body)) as object;

const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom('', 'x'.repeat(201), 'a\u0000b', 1.5, -101, 101, 2 ** 53, '2026-11-21T10:00:00', [], [1], {}),
);
const row = fc.dictionary(fc.constantFrom('id', 'qty', 'note'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });
/** A valid value, now and then replaced by any value. */
const mostly = <T>(valid: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: anyValue, weight: 1 });
/** Valid fields, each now and then any value, plus unknown fields now and then. */
const fields = {
  target: mostly(fc.constantFrom('items', 'public.items')),
  type: mostly(fc.constantFrom('insert', 'upsert', 'update', 'delete', 'increment')),
  values: mostly(row),
  key: mostly(row),
  conflictKey: mostly(fc.array(fc.constantFrom('id', 'code'), { minLength: 1, maxLength: 2 })),
  idempotencyKey: mostly(fc.string({ minLength: 1, maxLength: 20 })),
  priority: mostly(fc.integer({ min: -100, max: 100 })),
  notBefore: mostly(fc.constantFrom('2026-11-21T10:00:00Z', '2026-11-21T10:00:00.5+01:00')),
  label: mostly(fc.string({ maxLength: 100 })),
};
const operation = fc
  .record(fields, { requiredKeys: [] })
  .chain((base) =>
    fc
      .dictionary(fc.constantFrom('extra', 'constructor', 'Target'), anyValue, { maxKeys: 1 })
      .map((extra) => ({ ...base, ...extra })),
  );
const validOperation = fc.record(
  {
    target: fc.constantFrom('items', 'public.items'),
    type: fc.constantFrom('insert', 'upsert', 'update', 'delete', 'increment'),
    values: row,
    key: row,
    conflictKey: fc.array(fc.constantFrom('id', 'code'), { minLength: 1, maxLength: 2 }),
    idempotencyKey: fc.string({ minLength: 1, maxLength: 20 }).filter((key) => !key.includes('\u0000')),
    priority: fc.integer({ min: -100, max: 100 }),
    notBefore: fc.constantFrom('2026-11-21T10:00:00Z', '2026-11-21T10:00:00.5+01:00'),
    label: fc.string({ maxLength: 100 }).filter((label) => !label.includes('\u0000')),
  },
  { requiredKeys: ['target', 'type'] },
);

/** Whatever the precheck accepts of `bodies`, the full way accepts as the same request; and it accepts enough of them. */
async function acceptsOnlyAsTheFullWay(bodies: fc.Arbitrary<object>, dto: object, numRuns: number): Promise<void> {
  let accepted = 0;
  await fc.assert(
    fc.asyncProperty(bodies.map(asReceived), async (body) => {
      if (!acceptedAsSent(dto, body)) return;
      accepted += 1;
      assert.deepEqual(await fullWayResult(body, dto), body);
    }),
    { numRuns, seed: 20261123 },
  );
  assert.ok(accepted > 30, `only ${accepted} of the random bodies were accepted: the property says little`);
}

describe('validation precheck', () => {
  it('accepts only what the full way accepts, as the same request (single creates)', () =>
    acceptsOnlyAsTheFullWay(operation, OperationCreateDto, 3000));

  it('accepts only what the full way accepts, as the same request (bulk creates)', () =>
    acceptsOnlyAsTheFullWay(
      fc.oneof(
        fc.record({ operations: fc.array(fc.oneof(validOperation, operation), { maxLength: 4 }) }),
        fc.record({ operations: anyValue }),
        fc.record({ operations: fc.array(validOperation, { minLength: 1, maxLength: 3 }), extra: anyValue }),
      ),
      OperationsCreateDto,
      2000,
    ));

  it('accepts the requests callers send, one or a thousand', () => {
    fc.assert(fc.property(validOperation.map(asReceived), (body) => acceptedAsSent(OperationCreateDto, body)));
    const operations = fc.sample(validOperation.map(asReceived), { numRuns: 1000, seed: 1 });
    assert.ok(acceptedAsSent(OperationsCreateDto, { operations }));
    assert.ok(!acceptedAsSent(OperationsCreateDto, { operations: [...operations, operations[0]] })); // 1,001
    assert.ok(!acceptedAsSent(OperationsCreateDto, { operations: [] }));
    assert.ok(acceptedAsSent(OperationIdDto, { id: '42' }));
  });

  it('leaves to the full way what class-transformer converts, and asynchronous constraints', () => {
    // `limit` is `@Type(() => Number)`: the query's text becomes a number only on the full way.
    assert.equal(acceptedAsSent(OperationListQueryDto, { limit: 5 }), false);

    @ValidatorConstraint({ async: true })
    class Later implements ValidatorConstraintInterface {
      validate() {
        return Promise.resolve(true);
      }
    }
    class Checked {
      @IsString() @Validate(Later) name: string;
    }
    assert.equal(acceptedAsSent(Checked, { name: 'x' }), false);
    assert.equal(acceptedAsSent(String, 'x'), false);
  });

  it('hands an accepted body on as it is, and still refuses the others with each field named', async () => {
    const body = { target: 'items', type: 'insert', values: { id: 1, constructor: 'kept' } };
    assert.equal(await pipe.transform(body, payload(OperationCreateDto)), body);
    await assert.rejects(pipe.transform({ ...body, priority: 101 }, payload(OperationCreateDto)), (error: Error) =>
      /priority/.test(JSON.stringify(error)),
    );
  });
});

describe('a job launch with a field of its own it does not have', () => {
  it('says to put a parameter under parameters, an option under options', async () => {
    for (const [metatype, job] of [
      [JobLaunchDto, {}],
      [JobLaunchRpcDto, { job: 'copy' }],
    ] as const) {
      const error = await pipe
        .transform({ ...job, source: 'orders', parameters: { target: 'archive' } }, payload(metatype))
        .then(
          () => assert.fail('refused'),
          (e: unknown) => e as BatchError,
        );
      assert.equal(error.code, 'VALIDATION_FAILED');
      assert.equal(
        error.message,
        'source: property source should not exist: a job\'s parameters go under "parameters" ({"parameters": ' +
          '{"source": …}}), its options (chunkSize, skipLimit, …) under "options"',
      );
      assert.deepEqual(
        (error.details as { problems: { field: string }[] }).problems.map((p) => p.field),
        ['source'],
      );
    }
    const other = await pipe.transform({ id: '1', extra: 1 }, payload(OperationIdDto)).catch((e: BatchError) => e);
    assert.equal((other as BatchError).message, 'extra: property extra should not exist', 'other bodies as before');
  });
});
