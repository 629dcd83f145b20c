import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settledBytes, settledText, SettledParts } from '../../src/services/outbox/settled-events';

const parts = (operations: SettledParts['operations'] = []): SettledParts => ({
  client: 'billing',
  executionId: '42',
  settledAt: '2026-11-21T06:00:00.000Z',
  operations,
});

describe('the text of an operations.settled notification', () => {
  it("writes each operation of the runs in order of id, with its run's target and type, or its own", () => {
    const text = settledText(
      [
        ['1001', '1002', 'public.reservations', 'insert'],
        ['1004', '1004', 'billing:public.invoices', 'delete'],
      ],
      { '1002': '"status":"FAILED","rowsAffected":null,"error":{"code":"23505","message":"duplicate key"}' },
      parts([['1001', 'public.reservations', 'insert', 'r-1', 'RESERVE']]),
    );
    assert.equal(
      text,
      '{"type":"operations.settled","client":"billing","executionId":"42","settledAt":"2026-11-21T06:00:00.000Z","operations":[' +
        '{"id":"1001","status":"COMPLETED","rowsAffected":1,"error":null,"target":"public.reservations","type":"insert","idempotencyKey":"r-1","label":"RESERVE"},' +
        '{"id":"1002","status":"FAILED","rowsAffected":null,"error":{"code":"23505","message":"duplicate key"},"target":"public.reservations","type":"insert","idempotencyKey":null,"label":null},' +
        '{"id":"1004","status":"COMPLETED","rowsAffected":1,"error":null,"target":"billing:public.invoices","type":"delete","idempotencyKey":null,"label":null}]}',
    );
  });

  it('writes the operations its run marks as having found no row with no row affected', () => {
    const text = settledText([['8', '16', 'public.t', 'delete', '0101']], null, parts());
    const { operations } = JSON.parse(text) as { operations: { id: string; rowsAffected: number }[] };
    assert.deepEqual(
      operations.map(({ id, rowsAffected }) => [id, rowsAffected]),
      [8, 9, 10, 11, 12, 13, 14, 15, 16].map((id) => [String(id), id === 8 || id === 16 ? 0 : 1]),
    );
  });

  it('escapes what callers wrote: keys, labels, a client named oddly', () => {
    const key = 'k "quoted" \\ \n\t\u0001 é 𝄞 \u2028';
    const text = settledText([['7', '7', 'public.t', 'update']], null, {
      ...parts([['7', 'public.t', 'update', key, '</script>']]),
      client: 'a"b',
    });
    const message = JSON.parse(text) as { client: string; operations: { idempotencyKey: string; label: string }[] };
    assert.equal(message.client, 'a"b');
    assert.equal(message.operations[0].idempotencyKey, key);
    assert.equal(message.operations[0].label, '</script>');
  });

  it('takes an operation whose type its run did not know from the database, and counts ids past 2^53 exactly', () => {
    const text = settledText(
      [['9007199254740993', '9007199254740994', 'public.t', null]],
      null,
      parts([
        ['9007199254740993', 'public.t', 'upsert', null, null],
        ['9007199254740994', 'public.t', 'upsert', null, null],
      ]),
    );
    const { operations } = JSON.parse(text) as { operations: { id: string; type: string }[] };
    assert.deepEqual(
      operations.map(({ id, type }) => [id, type]),
      [
        ['9007199254740993', 'upsert'],
        ['9007199254740994', 'upsert'],
      ],
    );
  });
  it('writes a large message whole, as UTF-8', () => {
    const failed = '"status":"FAILED","rowsAffected":null,"error":{"code":"P0001","message":"é 𝄞"}';
    const bytes = settledBytes([['1', '30000', 'public.t', 'insert']], { '777': failed }, parts());
    const message = JSON.parse(bytes.toString('utf8')) as {
      operations: { id: string; error: { message: string } | null }[];
    };
    assert.equal(message.operations.length, 30_000);
    assert.deepEqual([message.operations[0].id, message.operations.at(-1)!.id], ['1', '30000']);
    assert.equal(message.operations[776].error!.message, 'é 𝄞');
  });
});
