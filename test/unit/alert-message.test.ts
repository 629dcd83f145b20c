import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IJobFinishedEvent } from '../../src/interfaces/job.interfaces';
import { alertBody, alertText } from '../../src/services/outbox/alert-message';

const EVENT: IJobFinishedEvent = {
  type: 'job.finished',
  client: 'loader',
  executionId: '7',
  job: 'import',
  instanceId: '3',
  parameters: { runId: 'r1', mode: 'insert', target: 'public.stations', format: 'csv', sha256: 'ab'.repeat(32) },
  status: 'FAILED',
  exitStatus: { code: 'FAILED', description: 'line 3, column elevation: "<!channel> & <b>high</b>" is no number' },
  readCount: 60,
  writeCount: 35,
  skipCount: 25,
  startedAt: '2026-11-21T03:00:00.000Z',
  endedAt: '2026-11-21T03:00:04.000Z',
};

describe('the body of a job alert', () => {
  it("is Slack's incoming-webhook body, with the alert and the job.finished notification beside the text", () => {
    const body = JSON.parse(alertBody('nightly', EVENT)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), ['text', 'alert', 'event']);
    assert.equal(body.alert, 'nightly');
    assert.deepEqual(body.event, EVENT);
  });

  it('says which run ended how, its parameters first those that tell runs apart, escaped as Slack asks', () => {
    assert.equal(
      alertText(EVENT),
      'Job import, execution 7 of client loader, ended FAILED: line 3, column elevation: "&lt;!channel&gt; &amp; ' +
        '&lt;b&gt;high&lt;/b&gt;" is no number (target public.stations, sha256 abababababab, format csv, mode insert, ' +
        'runId r1; 60 read, 35 written, 25 skipped)',
    );
  });

  it('names the exit code of an execution that completed with skips, and cuts a long description', () => {
    const text = alertText({
      ...EVENT,
      status: 'COMPLETED',
      parameters: {},
      exitStatus: { code: 'COMPLETED_WITH_SKIPS', description: 'x'.repeat(2000) },
    });
    assert.match(text, /^Job import, execution 7 of client loader, ended COMPLETED_WITH_SKIPS: x{499}… \(60 read/);
  });
});
