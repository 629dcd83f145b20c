import type { IJobFinishedEvent, JobParameterValue } from '../../interfaces/job.interfaces';

/** A description is cut at this many characters in an alert's text (the whole one is in the event). */
const DESCRIPTION_CHARS = 500;
/** A parameter's value is cut at this many characters in the text. */
const VALUE_CHARS = 100;
/** The parameters that tell runs apart, first in the text (as the dashboard shows them); then the others. */
const FIRST_PARAMETERS = ['source', 'target', 'sha256', 'format', 'mode'];

/**
 * The body a job alert POSTs: `text`, a line a person reads (Slack's incoming webhooks, and the services that take
 * their format, post it as it is), the alert's name, and the `job.finished` notification (docs/api.md#jobfinished).
 */
export function alertBody(alert: string, event: IJobFinishedEvent): string {
  return JSON.stringify({ text: alertText(event), alert, event });
}

/**
 * `Job copy, execution 42 of client billing, ended FAILED: <description> (source public.a, target public.b; 100
 * read, 90 written, 0 skipped)`. `&`, `<` and `>` are escaped as Slack asks, so that nothing in a description (which
 * may quote a record) becomes a link or a mention.
 */
export function alertText(event: IJobFinishedEvent): string {
  const ending = event.status === 'COMPLETED' ? event.exitStatus.code : event.status;
  const description = event.exitStatus.description ? `: ${cut(event.exitStatus.description, DESCRIPTION_CHARS)}` : '';
  const parameters = Object.entries(event.parameters)
    .sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name} ${parameterText(name, value)}`);
  const counts = `${event.readCount} read, ${event.writeCount} written, ${event.skipCount} skipped`;
  const details = [parameters.join(', '), counts].filter(Boolean).join('; ');
  return slackEscaped(
    `Job ${event.job}, execution ${event.executionId} of client ${event.client}, ended ${ending}${description} (${details})`,
  );
}

function parameterText(name: string, value: JobParameterValue): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return name === 'sha256' ? text.slice(0, 12) : cut(text, VALUE_CHARS);
}

function rank(name: string): number {
  const rank = FIRST_PARAMETERS.indexOf(name);
  return rank < 0 ? FIRST_PARAMETERS.length : rank;
}

function cut(text: string, chars: number): string {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

function slackEscaped(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
