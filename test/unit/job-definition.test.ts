import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchError } from '../../src/services/batch-error';
import type { IJobReject } from '../../src/interfaces/job.interfaces';
import { emptyCounts } from '../../src/services/step-counts';
import { job, nextStep, tasklet, type StepRun } from '../../src/services/jobs/job-definition';
import { skip, SkipLimitExceeded, skipLimitDescription } from '../../src/services/jobs/job-skips';
import { checkLaunch, instanceIdentity, withDefaults } from '../../src/services/jobs/job-parameters';
import { cronOf } from '../../src/services/jobs/job-schedules.service';

const finished = tasklet(async () => 'FINISHED');

const report = job('report')
  .describe('a report')
  .parameter('day', { type: 'timestamp', required: true, description: 'the day' })
  .parameter('format', { type: 'string', default: 'csv', values: ['csv', 'json'], description: 'output' })
  .parameter('columns', { type: 'names', description: 'columns' })
  .parameter('from', { type: 'key', description: 'a bound' })
  .option('chunkSize', { type: 'integer', default: 100, min: 1, max: 1000, description: 'rows per chunk' })
  .step('gather', finished)
  .on('EMPTY')
  .to('notify')
  .on('FAILED')
  .fail()
  .step('render', finished)
  .step('notify', finished)
  .on('*')
  .end()
  .build();

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof BatchError);
    assert.equal(error.code, 'VALIDATION_FAILED');
    return (error.details as { problems: { field: string }[] }).problems.map((p) => p.field);
  }
  return assert.fail('expected VALIDATION_FAILED');
}

describe('job parameters', () => {
  it('are checked by type, every problem named; options apart', () => {
    assert.deepEqual(
      problemsOf(() =>
        checkLaunch(report, { day: 'yesterday', format: 'xml', extra: 1, columns: [] }, { chunkSize: 0 }),
      ),
      ['parameters.day', 'parameters.format', 'parameters.extra', 'parameters.columns', 'options.chunkSize'],
    );
    assert.deepEqual(
      problemsOf(() => checkLaunch(report, {}, {})),
      ['parameters.day'],
    );
    assert.deepEqual(
      problemsOf(() => checkLaunch(report, [1], 'x')),
      ['parameters', 'options'],
    );
    assert.deepEqual(
      problemsOf(() => checkLaunch(report, { day: '2026-01-01', from: { a: 1 } }, {})),
      ['parameters.from'],
    );
    assert.deepEqual(
      problemsOf(() => checkLaunch(report, { day: '2026-01-01', scheduledAt: 'soon' }, {})),
      ['parameters.scheduledAt'],
    );
    // what Date.parse takes and PostgreSQL does not, or reads as another day
    for (const day of ['1', 'March 7', '2026-02-30', '2026-01-01T25:00:00Z', '2026-1-1'])
      assert.deepEqual(
        problemsOf(() => checkLaunch(report, { day }, {})),
        ['parameters.day'],
        day,
      );
    for (const day of ['2026-01-01', '2026-01-01T06:00:00Z', '2026-01-01 06:00:00.5+02:00', '2026-01-01T06:00'])
      assert.doesNotThrow(() => checkLaunch(report, { day }, {}), day);
  });

  it('are echoed as given; the job runs with the defaults added', () => {
    const launch = checkLaunch(report, { day: '2026-01-01', columns: 'a, b' }, {});
    assert.deepEqual(launch, { parameters: { day: '2026-01-01', columns: 'a, b' }, options: {} });
    assert.deepEqual(withDefaults(report.options, launch.options), { chunkSize: 100 });
  });

  it('identify an instance by their meaning: defaults, spelling and key order do not matter, options never', () => {
    const id = instanceIdentity(report, { day: '2026-01-01T00:00:00Z', columns: ['a', 'b'], from: 10 });
    assert.equal(
      id,
      instanceIdentity(report, { from: '10', format: 'csv', columns: 'a,b', day: '2026-01-01T01:00:00+01:00' }),
    );
    assert.notEqual(id, instanceIdentity(report, { day: '2026-01-01T00:00:00Z', columns: ['b', 'a'], from: 10 }));
    assert.notEqual(id, instanceIdentity(report, { day: '2026-01-02T00:00:00Z', columns: ['a', 'b'], from: 10 }));
    assert.notEqual(
      id,
      instanceIdentity(report, {
        day: '2026-01-01T00:00:00Z',
        columns: ['a', 'b'],
        from: 10,
        scheduledAt: '2026-01-01',
      }),
    );
  });
});

describe('job flow', () => {
  const [gather, render, notify] = report.steps;
  it('routes an exit code to its step, or to the end or a failure', () => {
    assert.deepEqual(nextStep(report, gather, 'EMPTY', 'COMPLETED'), { to: 'notify' });
    assert.deepEqual(nextStep(report, gather, 'FAILED', 'FAILED'), { fail: true });
    assert.deepEqual(nextStep(report, gather, 'COMPLETED', 'COMPLETED'), { to: 'render' });
    assert.deepEqual(nextStep(report, render, 'COMPLETED', 'COMPLETED'), { to: 'notify' });
    assert.deepEqual(nextStep(report, render, 'FAILED', 'FAILED'), { fail: true });
    assert.deepEqual(nextStep(report, notify, 'ANYTHING', 'COMPLETED'), { end: true });
  });

  it('refuses a transition to a step that does not exist, and a job without steps', () => {
    assert.throws(() => job('bad').step('a', finished).on('X').to('nowhere').build(), /nowhere/);
    assert.throws(() => job('empty').build(), /step/);
  });
});

describe('schedule cron expressions', () => {
  it('take five or six fields in a time zone', () => {
    const berlin = cronOf('0 3 * * *', 'Europe/Berlin').nextRun(new Date('2026-07-01T12:00:00Z'));
    assert.equal(berlin?.toISOString(), '2026-07-02T01:00:00.000Z');
    const everySecond = cronOf('* * * * * *', 'UTC').nextRuns(2);
    assert.equal(everySecond[1].getTime() - everySecond[0].getTime(), 1000);
  });

  it('refuse what does not parse, fires too often, never fires, or names no time zone', () => {
    for (const [expression, zone] of [
      ['every day', 'UTC'],
      ['* * * *', 'UTC'],
      ['* * * * * * *', 'UTC'],
      ['61 * * * *', 'UTC'],
      ['0 0 30 2 *', 'UTC'],
      ['0 3 * * *', 'Mars/Olympus'],
      ['0 3 * * *', ''],
    ]) {
      assert.throws(
        () => cronOf(expression, zone),
        (e: unknown) => e instanceof BatchError && e.code === 'VALIDATION_FAILED',
        `${expression} in ${zone}`,
      );
    }
  });
});

describe('skips', () => {
  /** A StepRun with `skipLimit`, and `before` skips committed before. */
  function stepWith(skipLimit: number, before = 0) {
    const rejects: IJobReject[] = [];
    const step = {
      job: { id: '7', job: 'report', clientId: '1', parameters: {}, options: { skipLimit } },
      counts: emptyCounts(),
      skippedBefore: before,
      reject: (reject: IJobReject) => void rejects.push(reject),
    } as unknown as StepRun;
    return { step, rejects };
  }

  it('count each skip by its kind; one past the limit is recorded too, then fails the step', () => {
    const { step, rejects } = stepWith(2, 1);
    skip(step, { code: '22P02', message: 'bad' }, 'a', { line: 3, column: 'qty' }, 'read');
    assert.deepEqual([step.counts.readSkipCount, step.counts.writeSkipCount], [1, 0]);
    const past = (() => {
      try {
        skip(step, { code: '23514', message: 'check' }, 'b', { line: 4, value: 'x' });
      } catch (error) {
        return error;
      }
    })();
    assert.ok(past instanceof SkipLimitExceeded);
    assert.deepEqual([past.limit, past.value, past.reject.line], [2, 'x', 4]);
    assert.deepEqual(
      rejects.map((r) => [r.line, r.code]),
      [
        [3, '22P02'],
        [4, '23514'],
      ],
    );
    assert.equal(step.counts.writeSkipCount, 1);
  });

  it('are described with the place and value, bytes that do not print escaped, and what to change', () => {
    const { step } = stepWith(0);
    try {
      skip(step, { code: '22P02', message: 'invalid' }, 'x', { line: 2, column: 'qty', value: '\u001f\ufffd\b' });
      assert.fail('past the limit');
    } catch (error) {
      assert.equal(
        skipLimitDescription(error as SkipLimitExceeded, '7', 'raise it'),
        'line 2, column qty, value "\\u001f\\ufffd\\b": 22P02 invalid. The skip limit is 0 (the option skipLimit): ' +
          'nothing refused may be skipped; the rejects are listed by GET /api/jobs/executions/7/rejects. To skip ' +
          'them and go on, raise it: it goes on after the last committed chunk.',
      );
    }
  });
});
