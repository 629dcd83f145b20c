import fc from 'fast-check';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ICreateBatchOperationRequest } from '../../src/interfaces/operation.interfaces';
import { AuthenticatedClient } from '../../src/services/access/client.service';
import { BatchError } from '../../src/services/batch-error';
import { ChunkStep } from '../../src/services/engine/chunk-step.service';
import { decimalOf, numericText, parseJson, stringifyJson } from '../../src/services/exact-json';
import { OperationService } from '../../src/services/ingest/operation.service';
import { createTestApp, TestApp } from '../support/app-context';

/**
 * Values are exact or refused: numbers as the caller wrote them, and checks at create that read a value as
 * PostgreSQL will when the operation is applied.
 */
describe('values taken exactly (real PostgreSQL)', () => {
  let t: TestApp;
  let operations: OperationService;
  let client: AuthenticatedClient;

  before(async () => {
    t = await createTestApp();
    operations = t.get(OperationService);
    client = await t.client('exact');
    await t.db.query(`CREATE DOMAIN public.short_code AS varchar(3) NOT NULL CHECK (VALUE <> 'bad')`);
    await t.db.query(`CREATE TABLE public.amounts (
      id int PRIMARY KEY, exact numeric, money numeric(30,2), big bigint, note text, doc jsonb, code public.short_code)`);
  });
  after(() => t.close());

  /** A request as a caller's JSON text, read the way the transports read it. */
  const parsed = (text: string) => parseJson(text) as ICreateBatchOperationRequest;
  const refusal = (request: ICreateBatchOperationRequest) =>
    operations.create(client, request).then(
      () => null,
      (error: BatchError) => `${error.code}: ${error.message}`,
    );

  it("gives every number the text PostgreSQL's jsonb gives it", async () => {
    const literal = fc
      .tuple(
        fc.boolean(),
        fc.stringMatching(/^(0|[1-9][0-9]{0,25})$/),
        fc.option(fc.stringMatching(/^[0-9]{1,20}$/), { nil: undefined }),
        fc.option(fc.integer({ min: -40, max: 40 }), { nil: undefined }),
      )
      .map(
        ([negative, whole, fraction, exponent]) =>
          `${negative ? '-' : ''}${whole}${fraction === undefined ? '' : `.${fraction}`}${exponent === undefined ? '' : `e${exponent}`}`,
      );
    const literals = fc.sample(literal, { numRuns: 2000, seed: 20261123 });
    const rows = await t.db.query<{ text: string }>(
      `SELECT (('{"n":' || l || '}')::jsonb)->>'n' AS text FROM unnest($1::text[]) WITH ORDINALITY AS x(l, i) ORDER BY i`,
      [literals],
    );
    rows.forEach(({ text }, i) => assert.equal(numericText(decimalOf(literals[i])!), text, literals[i]));
  });

  it('stores numbers exactly in numeric, bigint, text and jsonb columns, and echoes them exactly', async () => {
    const request = parsed(
      `{"target":"amounts","type":"insert","values":{"id":1,"exact":0.1234567890123456789,"money":12345678901234567890,
        "big":9223372036854775807,"note":12345678901234567890,"doc":{"amount":12345678901234567890123},"code":"ok"}}`,
    );
    const created = await operations.create(client, request);
    await t.get(ChunkStep).execute();
    const [row] = await t.db.query<Record<string, string>>(
      `SELECT exact::text, money::text, big::text, note, doc::text FROM public.amounts WHERE id = 1`,
    );
    assert.deepEqual(row, {
      exact: '0.1234567890123456789',
      money: '12345678901234567890.00',
      big: '9223372036854775807',
      note: '12345678901234567890',
      doc: '{"amount": 12345678901234567890123}',
    });
    const echoed = stringifyJson((await operations.get(client, created.id)).values);
    assert.match(echoed, /"exact":0\.1234567890123456789,/);
    assert.match(echoed, /"doc":\{"amount":12345678901234567890123\}/);
  });

  it('refuses what a column cannot hold exactly', async () => {
    const insert = (values: string) =>
      parsed(`{"target":"amounts","type":"insert","values":{"id":2,"code":"ok",${values}}}`);
    assert.match(
      (await refusal(insert('"big":9223372036854775808')))!,
      /^VALIDATION_FAILED: .*out of range for bigint/,
    );
    assert.match((await refusal(insert('"big":12345678901234567.5')))!, /^VALIDATION_FAILED: .*expects an integer/);
    assert.match((await refusal(insert('"money":"NaN"')))!, /^VALIDATION_FAILED: .*takes no NaN or infinity/);
    assert.match((await refusal(insert('"exact":1e131072')))!, /^VALIDATION_FAILED/);
  });

  it("checks a domain's modifier and NOT NULL at create, and leaves its CHECK to the database", async () => {
    const insert = (id: number, code: unknown) =>
      ({ target: 'amounts', type: 'insert', values: { id, code } }) as unknown as ICreateBatchOperationRequest;
    assert.match((await refusal(insert(3, null)))!, /^VALIDATION_FAILED: .*cannot be null/);
    assert.match((await refusal({ target: 'amounts', type: 'insert', values: { id: 3 } }))!, /code.*required/);
    assert.match((await refusal(insert(3, 'abcd')))!, /^VALIDATION_FAILED: .*longer than 3/);
    const checked = await operations.create(client, insert(3, 'bad'));
    await t.get(ChunkStep).execute();
    const stored = await operations.get(client, checked.id);
    assert.deepEqual([stored.status, stored.error?.code], ['FAILED', '23514']);
  });

  it('refuses a notBefore before the year 1 in UTC, alone or in a bulk request', async () => {
    const early = {
      target: 'amounts',
      type: 'insert',
      values: { id: 4, code: 'x' },
      notBefore: '0001-01-01T00:00:00+14:00',
    };
    assert.match(
      (await refusal(early as ICreateBatchOperationRequest))!,
      /^VALIDATION_FAILED: notBefore is before the year 1/,
    );
    const bulk = await operations
      .createMany(client, [
        { target: 'amounts', type: 'insert', values: { id: 5, code: 'y' } },
        early as ICreateBatchOperationRequest,
      ])
      .then(
        () => null,
        (error: BatchError) => error.code,
      );
    assert.equal(bulk, 'VALIDATION_FAILED');
  });
});
