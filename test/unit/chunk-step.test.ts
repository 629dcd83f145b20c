import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClaimedOperation, OperationOutcome } from '../../src/interfaces/chunk.interfaces';
import { emptyCounts, settledEvents } from '../../src/services/chunk-step.service';

function operation(id: string, clientName: string, extra: Partial<ClaimedOperation> = {}): ClaimedOperation {
  return {
    id,
    clientId: clientName === 'billing' ? '1' : '2',
    clientName,
    target: 'public.reservations',
    type: 'insert',
    shape: '',
    identity: '',
    idempotencyKey: null,
    label: null,
    attempts: 0,
    failures: 0,
    bytes: 0,
    ...extra,
  };
}

const completed = (op: ClaimedOperation, rowsAffected = 1): OperationOutcome => ({
  operation: op,
  status: 'COMPLETED',
  rowsAffected,
  error: null,
});
const failed = (op: ClaimedOperation, code: string, message: string): OperationOutcome => ({
  operation: op,
  status: 'FAILED',
  rowsAffected: null,
  error: { code, message },
});

const settledAt = new Date('2026-11-21T06:00:00.000Z');

describe('settledEvents', () => {
  it('builds the operations.settled message of CONTRACT.md section 3, field for field', () => {
    const op = operation('1001', 'billing', { idempotencyKey: 'r-1', label: 'RESERVE' });
    assert.deepEqual(settledEvents('42', settledAt, [completed(op)]), [
      {
        type: 'operations.settled',
        client: 'billing',
        executionId: '42',
        settledAt: '2026-11-21T06:00:00.000Z',
        operations: [
          {
            id: '1001',
            status: 'COMPLETED',
            rowsAffected: 1,
            error: null,
            target: 'public.reservations',
            type: 'insert',
            idempotencyKey: 'r-1',
            label: 'RESERVE',
          },
        ],
      },
    ]);
  });

  it('carries the database error of a failed operation', () => {
    const op = operation('7', 'billing', { type: 'update' });
    const [event] = settledEvents('3', settledAt, [
      failed(op, '23505', 'duplicate key value violates unique constraint "items_pkey"'),
    ]);
    assert.deepEqual(event.operations, [
      {
        id: '7',
        status: 'FAILED',
        rowsAffected: null,
        error: { code: '23505', message: 'duplicate key value violates unique constraint "items_pkey"' },
        target: 'public.reservations',
        type: 'update',
        idempotencyKey: null,
        label: null,
      },
    ]);
  });

  it('sends one event per client, each with only its own operations', () => {
    const outcomes = [
      completed(operation('1', 'billing')),
      completed(operation('2', 'shipping')),
      failed(operation('3', 'billing'), '23514', 'check'),
      completed(operation('4', 'shipping'), 0),
    ];
    const events = settledEvents('5', settledAt, outcomes);
    assert.equal(events.length, 2);
    const byClient = new Map(events.map((e) => [e.client, e]));
    assert.deepEqual(
      byClient.get('billing')!.operations.map((o) => [o.id, o.status]),
      [
        ['1', 'COMPLETED'],
        ['3', 'FAILED'],
      ],
    );
    assert.deepEqual(
      byClient.get('shipping')!.operations.map((o) => [o.id, o.status, o.rowsAffected]),
      [
        ['2', 'COMPLETED', 1],
        ['4', 'COMPLETED', 0],
      ],
    );
    for (const event of events) {
      assert.equal(event.type, 'operations.settled');
      assert.equal(event.executionId, '5');
      assert.equal(event.settledAt, '2026-11-21T06:00:00.000Z');
    }
  });

  it('orders operations by numeric id, not as text (9 before 10, 99 before 100)', () => {
    const ids = ['100', '10', '9', '99', '1000', '2', '11'];
    const [event] = settledEvents(
      '1',
      settledAt,
      ids.map((id) => completed(operation(id, 'billing'))),
    );
    assert.deepEqual(
      event.operations.map((o) => o.id),
      ['2', '9', '10', '11', '99', '100', '1000'],
    );
  });

  it('orders ids beyond the safe integer range correctly', () => {
    const ids = ['9007199254740993', '9007199254740992', '10000000000000000'];
    const [event] = settledEvents(
      '1',
      settledAt,
      ids.map((id) => completed(operation(id, 'billing'))),
    );
    assert.deepEqual(
      event.operations.map((o) => o.id),
      ['9007199254740992', '9007199254740993', '10000000000000000'],
    );
  });

  it('does not reorder the outcomes it was given', () => {
    const outcomes = [completed(operation('10', 'billing')), completed(operation('9', 'billing'))];
    settledEvents('1', settledAt, outcomes);
    assert.deepEqual(
      outcomes.map((o) => o.operation.id),
      ['10', '9'],
    );
  });

  it('sends nothing for no outcomes', () => {
    assert.deepEqual(settledEvents('1', settledAt, []), []);
  });
});

describe('emptyCounts', () => {
  it('has every Spring Batch counter at zero', () => {
    assert.deepEqual(emptyCounts(), {
      readCount: 0,
      writeCount: 0,
      filterCount: 0,
      readSkipCount: 0,
      processSkipCount: 0,
      writeSkipCount: 0,
      commitCount: 0,
      rollbackCount: 0,
    });
  });

  it('returns a fresh object each time', () => {
    const a = emptyCounts();
    a.readCount = 5;
    assert.equal(emptyCounts().readCount, 0);
  });
});
