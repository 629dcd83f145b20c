import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IJobExecution, JobStatus } from '../../src/interfaces/job.interfaces';
import { BatchServiceError } from '../../src/client/batch-service.error';
import { Command, EXIT, parseCommand, refusal } from '../../src/client/cli-args';
import { decide, FollowSettings, FollowState, Move, startFollowing, unreachableReason } from '../../src/client/follow';

const ENV = { BATCH_API_KEY: 'bsk_env' };
const parse = (line: string, env: Record<string, string | undefined> = ENV): Command =>
  parseCommand(line.split(' ').filter(Boolean), env);
const problem = (line: string, env?: Record<string, string | undefined>) => {
  const command = parse(line, env);
  assert.equal(command.kind, 'wrong', JSON.stringify(command));
  return (command as { problem: string }).problem;
};

describe('the command line: its arguments', () => {
  it('reads an import: the flags as the upload parameters, the service from flags or the environment', () => {
    const command = parse(
      'import data.csv --target items --mode upsert --conflict-key a,b --no-header --columns a,b,c --skip-limit 5 ' +
        '--chunk-size 200 --run-id again --timeout 15m --url http://svc:3000/ --key bsk_flag',
    );
    assert.deepEqual(command, {
      kind: 'import',
      file: 'data.csv',
      service: { url: 'http://svc:3000', apiKey: 'bsk_flag' },
      params: {
        target: 'items',
        mode: 'upsert',
        conflictKey: 'a,b',
        format: undefined,
        header: false,
        columns: 'a,b,c',
        delimiter: undefined,
        quote: undefined,
        null: undefined,
        skipLimit: 5,
        chunkSize: 200,
        runId: 'again',
      },
      timeoutMs: 900_000,
    });
    const plain = parse('import data.csv --target items', {
      BATCH_API_KEY: 'k',
      BATCH_SERVICE_URL: 'https://b.example',
    });
    assert.deepEqual(plain.kind === 'import' && [plain.service, plain.timeoutMs], [
      { url: 'https://b.example', apiKey: 'k' },
      null,
    ]);
    assert.equal((parse('import d.csv --target t --timeout 90') as { timeoutMs: number }).timeoutMs, 90_000);
    assert.equal((parse('import d.csv --target t --timeout 1.5h') as { timeoutMs: number }).timeoutMs, 5_400_000);
    assert.deepEqual(parse('--help'), { kind: 'help' });
    assert.deepEqual(parse('import -h'), { kind: 'help' });
  });

  it('says what is missing, by its flag', () => {
    assert.match(problem('import data.csv'), /^missing --target <table>/);
    assert.match(problem('import data.csv --mode upsert'), /^missing --target <table>/);
    assert.match(problem('import --target items'), /^missing the file to import/);
    assert.match(problem(''), /^say what to do: batch-service import <file> --target <table>/);
    assert.match(problem('import data.csv --target items', {}), /^missing --key <key> \(or \$BATCH_API_KEY\)/);
    assert.equal(problem('import data.csv --target'), '--target needs a value');
  });

  it('refuses a wrong value naming the flag and what it takes, never an option of the service', () => {
    assert.equal(
      problem('import data.csv --target items --skip-limit lots'),
      '--skip-limit takes a whole number of records that may be rejected, 0 or more, not "lots"',
    );
    assert.match(problem('import data.csv --target items --skip-limit=-1'), /^--skip-limit takes/);
    assert.match(problem('import data.csv --target items --chunk-size 0'), /^--chunk-size takes .* 1 or more/);
    assert.equal(problem('import data.csv --target items --mode merge'), '--mode is insert or upsert, not "merge"');
    assert.equal(problem('import data.csv --target items --format xml'), '--format is csv or ndjson, not "xml"');
    assert.match(problem('import data.csv --target items --timeout soon'), /^--timeout is a duration such as 90/);
    assert.match(problem('import data.csv --target items --url localhost:3000'), /^--url must be .* http:\/\//);
    assert.equal(
      problem('import data.csv --target items --skiplimit 3'),
      'there is no option --skiplimit: --help lists them',
    );
    assert.match(problem('load data.csv --target items'), /^there is no command "load"/);
    assert.match(problem('import a.csv b.csv --target items'), /one file at a time/);
    for (const [line, wrong] of [
      ['import d.csv --target t --skip-limit lots', 'skipLimit'],
      ['import d.csv --target t --chunk-size x', 'chunkSize'],
    ])
      assert.doesNotMatch(problem(line), new RegExp(wrong));
  });

  it("puts a refused upload in the command line's words: --run-id for a 409, flags for the service's names", () => {
    const conflict = (reason: string, message = 'this job instance is complete: launch it with another runId') =>
      refusal(new BatchServiceError('CONFLICT', message, { reason, executionId: '7' }));
    assert.equal(
      conflict('JOB_INSTANCE_COMPLETE'),
      'CONFLICT: this file was loaded with these settings already (execution 7); to load it once more, add --run-id <any text>',
    );
    assert.doesNotMatch(conflict('JOB_INSTANCE_COMPLETE'), /runId/);
    assert.match(conflict('JOB_EXECUTION_RUNNING'), /running now \(execution 7\); wait for it, or add --run-id/);
    assert.match(conflict('START_LIMIT_EXCEEDED', 'started as many times as its job allows'), /add --run-id/);
    assert.equal(
      refusal(new BatchServiceError('VALIDATION_FAILED', 'options.skipLimit: must be an integer; quote: must differ')),
      'VALIDATION_FAILED: --skip-limit: must be an integer; --quote: must differ',
    );
    assert.equal(
      refusal(new BatchServiceError('UNKNOWN_COLUMN', 'public.items has no column zip: the header names …')),
      'UNKNOWN_COLUMN: public.items has no column zip: the header names …',
    );
  });
});

const SETTINGS: FollowSettings = { pollMs: 500, firstBackoffMs: 1000, maxBackoffMs: 8000, failedGraceMs: 2000 };

function execution(id: string, status: JobStatus, exit: string | null = null, description?: string): IJobExecution {
  return {
    id,
    job: 'import',
    instanceId: '3',
    parameters: {},
    options: {},
    client: 'loader',
    status,
    exitStatus: exit ? { code: exit, description: description ?? null } : null,
    createdAt: '2026-11-21T06:00:00.000Z',
    startedAt: null,
    endedAt: null,
    startCount: Number(id),
    restartable: false,
    progress: { unit: 'bytes', done: 0, total: null, perSecond: 0, etaSeconds: null },
    steps: [],
  };
}

/** Runs the follow loop's decisions over a sequence of looks, a second apart unless given; the moves made. */
function follow(
  looks: ({ at?: number } & Parameters<typeof decide>[1])[],
  timeoutMs: number | null = null,
): { moves: Move[]; state: FollowState } {
  const state = startFollowing(execution('1', 'STARTING'), 0, timeoutMs);
  const moves: Move[] = [];
  looks.forEach((look, i) => moves.push(decide(state, look, look.at ?? (i + 1) * 1000, SETTINGS)));
  return { moves, state };
}

const seen = (...items: IJobExecution[]) => ({ kind: 'executions' as const, items });
const away = { kind: 'unreachable' as const, reason: 'connect ECONNREFUSED 127.0.0.1:3000' };

describe('the command line: following an import to its end', () => {
  it('ends with the exit code of how the instance ended', () => {
    const end = (...items: IJobExecution[]) => follow([seen(...items)]).moves[0];
    assert.deepEqual(end(execution('1', 'COMPLETED', 'COMPLETED')), { kind: 'end', exit: EXIT.completed, say: [] });
    assert.equal((end(execution('1', 'COMPLETED', 'COMPLETED_WITH_SKIPS')) as { exit: number }).exit, 4);
    assert.equal((end(execution('1', 'STOPPED', 'STOPPED')) as { exit: number }).exit, EXIT.failed);
    assert.equal((end(execution('1', 'ABANDONED', 'FAILED')) as { exit: number }).exit, EXIT.failed);
    assert.deepEqual(end(execution('1', 'STARTED')), { kind: 'wait', ms: 500, say: [] });
  });

  it('waits for a restart before it calls a FAILED execution final, then follows the restart', () => {
    const failed = execution('1', 'FAILED', 'FAILED', 'its worker (host:41) stopped renewing its lease');
    const once = follow([seen(failed), seen(failed, { ...failed }), seen(failed)]);
    assert.deepEqual(
      once.moves.map((m) => m.kind),
      ['wait', 'wait', 'end'],
      'final once it stayed the newest for failedGraceMs',
    );
    assert.equal((once.moves[2] as { exit: number }).exit, EXIT.failed);

    const restarted = follow([
      seen(failed),
      seen(execution('2', 'STARTING'), failed),
      seen(execution('2', 'STARTED'), failed),
      seen(execution('2', 'COMPLETED', 'COMPLETED'), failed),
    ]);
    assert.deepEqual(
      restarted.moves.map((m) => m.kind),
      ['wait', 'wait', 'wait', 'end'],
    );
    assert.deepEqual(restarted.moves[1].say, [
      'execution 1 FAILED: its worker (host:41) stopped renewing its lease',
      'the service started the import again, where it stopped, as execution 2',
    ]);
    assert.equal(restarted.state.executionId, '2');
    assert.equal((restarted.moves[3] as { exit: number }).exit, EXIT.completed);
    assert.deepEqual(
      restarted.state.executions.map((e) => e.id),
      ['2', '1'],
      'the summary counts every execution',
    );
  });

  it('retries a lost service with a growing wait, saying so, and says when it is back', () => {
    const { moves } = follow([
      seen(execution('1', 'STARTED')),
      away,
      away,
      { kind: 'unavailable', reason: 'UNAVAILABLE: The database is unavailable; retry later' },
      away,
      away,
      { ...seen(execution('1', 'STARTED')), at: 20_500 },
    ]);
    assert.deepEqual(
      moves.map((m) => (m.kind === 'wait' ? m.ms : m.kind)),
      [500, 1000, 2000, 4000, 8000, 8000, 500],
    );
    assert.deepEqual(moves[1].say, [
      'the service cannot be reached (connect ECONNREFUSED 127.0.0.1:3000); retrying in 1 s (attempt 1)',
    ]);
    assert.match(moves[3].say[0], /^the service cannot answer \(UNAVAILABLE: .*\); retrying in 4 s \(attempt 3\)$/);
    assert.deepEqual(moves[6].say, ['reached the service again after 18.5 s']);
    const after = follow([away, seen(execution('1', 'STARTED')), away]);
    assert.equal((after.moves[2] as { ms: number }).ms, 1000, 'a new loss starts the wait again');
  });

  it('stops at --timeout: timed out while it runs, unreachable while the service is away', () => {
    const running = follow([seen(execution('1', 'STARTED')), seen(execution('1', 'STARTED'))], 1500);
    assert.deepEqual(running.moves[1], {
      kind: 'end',
      exit: EXIT.timedOut,
      say: ['--timeout passed while execution 1 was STARTED; the import goes on in the service'],
    });
    const lost = follow([away, away], 1500);
    assert.equal((lost.moves[1] as { exit: number }).exit, EXIT.unreachable);
    assert.match(lost.moves[1].say[0], /^--timeout passed, the service away for 1 s/);
    const done = follow([seen(execution('1', 'COMPLETED', 'COMPLETED')), away], 500);
    assert.equal((done.moves[0] as { exit: number }).exit, EXIT.completed, 'an end seen at the limit is the end');
  });

  it('ends as refused on an answer no retry changes (a revoked key)', () => {
    const { moves } = follow([
      { kind: 'refused', error: new BatchServiceError('UNAUTHENTICATED', 'Missing or invalid API key') },
    ]);
    assert.deepEqual(moves[0], {
      kind: 'end',
      exit: EXIT.refused,
      say: ['the service refused to answer: UNAUTHENTICATED: Missing or invalid API key'],
    });
  });

  it("tells a lost connection from other errors, by fetch's cause", () => {
    const failed = new TypeError('fetch failed', {
      cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }),
    });
    assert.equal(unreachableReason(failed), 'connect ECONNREFUSED 127.0.0.1:9');
    assert.equal(unreachableReason(Object.assign(new Error('x'), { name: 'TimeoutError' })), 'no answer within 15 s');
    assert.equal(unreachableReason(new SyntaxError('Unexpected token <')), null);
    assert.equal(unreachableReason(new BatchServiceError('FORBIDDEN', 'no')), null);
  });
});
