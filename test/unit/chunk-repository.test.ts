import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClaimedOperation, OperationOutcome } from '../../src/interfaces/chunk.interfaces';
import { RECORD_CHUNK_SQL, recordChunkParams, StepRecord, WORKER } from '../../src/services/engine/chunk-repository';
import { emptyCounts } from '../../src/services/step-counts';
import { MAX_MESSAGE_CHARS, MessageRun, settledMessages } from '../../src/services/outbox/settled-events';
import { claimedId } from '../support/claimed';

/** An operation read from its stream, or when it was applied before (a retry), from the deferred set. */
function operation(id: string, clientId: string, target = 'public.reservations', attempts = 0): ClaimedOperation {
  const shape = JSON.stringify(['upsert', ['id', 'note'], ['id'], '1']);
  return claimedId(id, { clientId, target, shape, attempts, deferred: attempts > 0 });
}

/** A message's runs as ranges of ids (numbers). */
const ranges = (message: { runs: string }) =>
  (JSON.parse(message.runs) as MessageRun[]).map(([first, last]) => [Number(first), Number(last)]);

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

const startedAt = new Date('2026-11-21T06:00:00.000Z');
const step: StepRecord = {
  ...emptyCounts(),
  name: 'insert public.reservations (id)',
  target: 'public.reservations',
  type: 'insert',
  status: 'COMPLETED',
  exitMessage: 'statement failed with SQLSTATE 23505; applied in parts down to the failing operations',
  startedAt,
  endedAt: startedAt,
  readCount: 3,
  writeCount: 2,
  writeSkipCount: 1,
  commitCount: 1,
  rollbackCount: 1,
};

describe('the job repository: what a chunk records, in one statement', () => {
  it('writes the execution, its steps, the outcomes, the clients settled for and their notifications', () => {
    for (const write of [
      'INSERT INTO batch.chunks',
      'INSERT INTO batch.chunk_steps',
      'INSERT INTO batch.outcomes',
      'INSERT INTO batch.settled_runs',
      'INSERT INTO batch.operation_counts',
      'INSERT INTO batch.chunk_clients',
      'INSERT INTO batch.outbox (routing_key, chunk_id, client_id, runs, exceptions, size)',
      'UPDATE batch.streams',
      'DELETE FROM batch.deferred',
    ]) {
      assert.ok(RECORD_CHUNK_SQL.includes(write), write);
    }
    assert.deepEqual(
      RECORD_CHUNK_SQL.match(/\$\d+/g)!
        .map((p) => Number(p.slice(1)))
        .sort((a, b) => a - b)
        .at(-1),
      25,
      'twenty-five parameters',
    );
  });

  it('passes the execution and its steps as JSON named like their columns, first attempts as runs, other outcomes as rows', () => {
    const outcomes = [
      completed(operation('11', '1')),
      failed(operation('12', '2', 'public.stock', 2), '23505', 'duplicate key'),
      completed(operation('13', '1'), 0),
      completed(operation('14', '1', 'public.stock')),
      completed(operation('16', '1', 'public.stock')),
      completed(operation('15', '1', 'public.stock')),
      completed(operation('17', '1', 'public.stock', 1)),
    ];
    const [
      execution,
      steps,
      targetNames,
      ids,
      clients,
      targets,
      attempts,
      rows,
      failures,
      firsts,
      lasts,
      countClients,
      countTargets,
      countsCompleted,
      countsSettled,
      prefix,
      messageClients,
      messageRuns,
      messageExceptions,
      messageSizes,
      streamTargets,
      streamPriorities,
      streamLasts,
      deferred,
      noRows,
    ] = recordChunkParams({
      startedAt,
      read: 5,
      filtered: 1,
      steps: [step],
      outcomes,
    });
    assert.deepEqual(JSON.parse(execution as string), {
      exit_message: '1 of 5 operations failed',
      worker: WORKER,
      read_count: 5,
      write_count: 2,
      filter_count: 0,
      read_skip_count: 0,
      process_skip_count: 1,
      write_skip_count: 1,
      commit_count: 1,
      rollback_count: 1,
      started_at: '2026-11-21T06:00:00.000Z',
    });
    assert.deepEqual(JSON.parse(steps as string)[0], {
      name: 'insert public.reservations (id)',
      target: 'public.reservations',
      type: 'insert',
      status: 'COMPLETED',
      exit_message: 'statement failed with SQLSTATE 23505; applied in parts down to the failing operations',
      read_count: 3,
      write_count: 2,
      filter_count: 0,
      read_skip_count: 0,
      process_skip_count: 0,
      write_skip_count: 1,
      commit_count: 1,
      rollback_count: 1,
      started_at: '2026-11-21T06:00:00.000Z',
      ended_at: '2026-11-21T06:00:00.000Z',
    });
    assert.deepEqual(targetNames, ['public.reservations', 'public.stock']);
    assert.deepEqual(
      [ids, clients, targets, attempts, rows],
      ['{12,17}', '{2,1}', '{2,2}', '{2,1}', '{NULL,1}'],
      'outcome rows: failed, a second attempt',
    );
    assert.deepEqual([firsts, lasts], ['{11,13}', '{11,16}'], 'runs of consecutive ids, no row affected or one');
    assert.deepEqual(noRows, [null, '01'], 'the first operation of the second run (13) affected no row');
    assert.deepEqual(
      [countClients, countTargets, countsCompleted, countsSettled],
      ['{1,2,1}', '{1,2,2}', '{2,0,3}', '{2,1,4}'],
      'by client and target: completed in runs, and settled (no longer pending)',
    );
    assert.deepEqual(
      [streamTargets, streamPriorities, streamLasts],
      ['{1,2}', '{0,0}', '{13,16}'],
      'each stream read from, with the last id taken from it',
    );
    assert.equal(deferred, '{12,17}', 'those read from the deferred set');
    assert.deepEqual(JSON.parse(failures as string), [{ id: '12', code: '23505', message: 'duplicate key' }]);
    assert.equal(prefix, 'operations.settled.');
    assert.deepEqual(messageClients, ['1', '2']);
    assert.deepEqual(
      (messageRuns as string[]).map((runs) => JSON.parse(runs) as unknown),
      [
        [
          ['11', '11', 'public.reservations', 'upsert'],
          ['13', '13', 'public.reservations', 'upsert', '01'],
          ['14', '17', 'public.stock', 'upsert'],
        ],
        [['12', '12', 'public.stock', 'upsert']],
      ],
      "each client's operations, as runs of ids with their target and type",
    );
    assert.deepEqual(
      (messageExceptions as string[]).map((e) => JSON.parse(e) as unknown),
      [null, { '12': '"status":"FAILED","rowsAffected":null,"error":{"code":"23505","message":"duplicate key"}' }],
      'the outcomes but "completed, one row affected or none", as the fields of their notification',
    );
    assert.ok((messageSizes as number[]).every((size) => size > 0));
  });

  it("writes each client's message as the ids it reports, with no exceptions when every operation completed plainly", () => {
    const messages = settledMessages([
      completed(operation('10', '1')),
      completed({ ...operation('9', '1'), chars: '"k\\""'.length + '"l"'.length }),
      completed(operation('3', '2')),
    ]);
    assert.deepEqual(
      messages.map(({ clientId, exceptions, ...m }) => ({ clientId, operations: ranges(m), exceptions })),
      [
        { clientId: '2', operations: [[3, 3]], exceptions: null },
        { clientId: '1', operations: [[9, 10]], exceptions: null },
      ],
    );
  });

  it("cuts a client's operations into messages of at most about MAX_MESSAGE_CHARS (and one operation)", () => {
    const label = 'x'.repeat(MAX_MESSAGE_CHARS / 4);
    const chars = JSON.stringify(label).length + 'null'.length; // a label, no idempotency key
    const outcomes = Array.from({ length: 10 }, (_, i) => completed({ ...operation(String(i + 1), '1'), chars }));
    const messages = settledMessages([...outcomes, completed(operation('11', '2'))]);
    assert.deepEqual(
      messages.map((m) => [m.clientId, ranges(m)]),
      [
        ['1', [[1, 3]]],
        ['1', [[4, 6]]],
        ['1', [[7, 9]]],
        ['1', [[10, 10]]],
        ['2', [[11, 11]]],
      ],
    );
    for (const { size } of messages) assert.ok(size <= MAX_MESSAGE_CHARS);
    assert.ok(messages[0].size > 3 * label.length, 'the estimate counts what the text holds');
  });

  it('cuts rounds into messages in order of id: each message a range of ids', () => {
    const label = 'x'.repeat(MAX_MESSAGE_CHARS / 4);
    const chars = JSON.stringify(label).length + 'null'.length;
    const round = (ids: string[]) =>
      completed({ ...operation(ids[0], '1'), count: ids.length, ids, chars: chars * ids.length });
    const messages = settledMessages([round(['1', '3', '5']), round(['2', '4', '6'])]);
    assert.deepEqual(messages.map(ranges), [[[1, 3]], [[4, 6]]]);
  });

  it("cuts a run across messages by its operations' average size, reporting each operation once", () => {
    const each = 4_000; // each operation's label and key, as JSON
    const run = { ...operation('1', '1'), count: 600, chars: 600 * each };
    const messages = settledMessages([completed(run), completed({ ...operation('601', '1'), chars: 8 })]);
    const fits = Math.floor(MAX_MESSAGE_CHARS / each); // and a little less: each operation's id, outcome, target, type
    const reported = messages.map(ranges);
    assert.ok(
      reported.every((runs) => runs.length === 1),
      'each message one range',
    );
    const [[[first, firstLast]]] = reported;
    assert.equal(first, 1);
    assert.ok(firstLast > fits * 0.9 && firstLast <= fits, `${firstLast} operations in the first, about ${fits} fit`);
    assert.equal(reported.at(-1)![0][1], 601, 'every operation, each once');
    for (const { size } of messages) assert.ok(size <= MAX_MESSAGE_CHARS);
    reported.forEach(([[first]], i) => i > 0 && assert.equal(first, reported[i - 1][0][1] + 1, 'next to the last one'));
  });

  it("records a stream's rounds as the runs they make together, each client's apart", () => {
    const round = (ids: string[], clientId = '1') =>
      ({ ...operation(ids[0], clientId), count: ids.length, ids, chars: 8 * ids.length }) as ClaimedOperation;
    const params = recordChunkParams({
      startedAt,
      read: 9,
      filtered: 0,
      steps: [],
      outcomes: [
        completed(round(['1', '3', '5'])),
        completed(round(['2', '4', '6'])),
        completed(operation('7', '1'), 0),
        completed(round(['8', '10'], '2')),
      ],
    });
    assert.deepEqual(params.slice(3, 5), ['{}', '{}'], 'no outcome row');
    assert.deepEqual(params.slice(9, 11), ['{1,10}', '{8,10}'], 'runs that meet are one, whoever sent them');
    assert.deepEqual(params[24], ['40', null], 'the operation that changed no row (7) marked in its run');
    assert.deepEqual(params.slice(16, 18), [
      ['1', '2'],
      [
        '[["1","7","public.reservations","upsert","40"]]',
        '[["8","8","public.reservations","upsert"],["10","10","public.reservations","upsert"]]',
      ],
    ]);
    assert.deepEqual(params.slice(20, 24), ['{1}', '{0}', '{10}', '{}'], 'the stream taken through its last id');
  });

  it('records a run of completions as a run of ids and counts its operations; its stream is taken through its last id', () => {
    const params = recordChunkParams({
      startedAt,
      read: 1002,
      filtered: 0,
      steps: [],
      outcomes: [
        completed({ ...operation('100', '1'), count: 1000 }),
        completed(operation('1100', '1')),
        completed(operation('1101', '2')),
      ],
    });
    assert.deepEqual(params.slice(9, 11), ['{100}', '{1101}'], 'runs that meet are one, whoever sent them');
    assert.deepEqual(
      params.slice(11, 15),
      ['{1,2}', '{1,1}', '{1001,1}', '{1001,1}'],
      'completed and settled by client',
    );
    assert.deepEqual(params.slice(20, 24), ['{1}', '{0}', '{1101}', '{}'], 'the stream and its last id');
  });

  it('says nothing failed when nothing did', () => {
    const [execution, , , , , , , , failures] = recordChunkParams({
      startedAt,
      read: 1,
      filtered: 0,
      steps: [],
      outcomes: [completed(operation('1', '1'))],
    });
    assert.equal(JSON.parse(execution as string).exit_message, null);
    assert.equal(failures, '[]');
  });

  it('counts from zero: a fresh object each time', () => {
    const a = emptyCounts();
    a.readCount = 5;
    assert.equal(emptyCounts().readCount, 0);
  });
});
