import type { IJobExecution, IJobExecutionList } from '../interfaces/job.interfaces';
import { BatchServiceError } from './batch-service.error';
import { EXIT, ExitCode } from './cli-args';
import { answerOf, ImportTarget } from './import-file';

/**
 * Following a job instance to its end, as the command line does: the decisions are made here, from what each look at
 * the service found, so that they are tested without one.
 */

/** What one look at the service found. */
export type Observation =
  /** The instance's executions, newest first (`GET /api/jobs/executions?instanceId=`). */
  | { kind: 'executions'; items: IJobExecution[] }
  /** No answer: the service is down, restarting, or the network between is. */
  | { kind: 'unreachable'; reason: string }
  /** An answer that says to come back: 503 (its database is away), 429, 5xx. */
  | { kind: 'unavailable'; reason: string }
  /** An answer that no retry changes: the key was revoked, the execution is not this client's … */
  | { kind: 'refused'; error: BatchServiceError };

export interface FollowSettings {
  /** Between two looks while the import runs. */
  pollMs: number;
  /** The first wait after the service could not be reached; doubled at each failure up to `maxBackoffMs`. */
  firstBackoffMs: number;
  maxBackoffMs: number;
  /**
   * How long a FAILED execution must stay the newest of its instance to be final. The service marks an execution
   * whose worker died FAILED and launches its restart in one transaction, so a restart shows together with the
   * failure; this covers a look that came between two services' answers, and costs a failure that much.
   */
  failedGraceMs: number;
}

export const FOLLOW_SETTINGS: FollowSettings = {
  pollMs: 500,
  firstBackoffMs: 1000,
  maxBackoffMs: 30_000,
  failedGraceMs: 2000,
};

export interface FollowState {
  /** The execution followed: the newest of the instance seen so far. */
  executionId: string;
  /** When `--timeout` passes (ms since the epoch), or null. */
  deadline: number | null;
  /** Since when the newest execution has been FAILED, or null. */
  failedSince: number | null;
  /** Since when the service has been away, and the failed looks since. */
  lostSince: number | null;
  attempts: number;
  /** The instance's executions at the last answer, newest first. */
  executions: IJobExecution[];
}

export type Move = { kind: 'wait'; ms: number; say: string[] } | { kind: 'end'; exit: ExitCode; say: string[] };

export function startFollowing(launched: IJobExecution, now: number, timeoutMs: number | null): FollowState {
  return {
    executionId: launched.id,
    deadline: timeoutMs === null ? null : now + timeoutMs,
    failedSince: null,
    lostSince: null,
    attempts: 0,
    executions: [launched],
  };
}

/** What to do after a look at the service: wait and look again, or end with an exit code. The state is updated. */
export function decide(
  state: FollowState,
  seen: Observation,
  now: number,
  settings: FollowSettings = FOLLOW_SETTINGS,
): Move {
  const say: string[] = [];
  const timedOut = state.deadline !== null && now >= state.deadline;
  if (seen.kind === 'refused') {
    return {
      kind: 'end',
      exit: EXIT.refused,
      say: [`the service refused to answer: ${seen.error.code}: ${seen.error.message}`],
    };
  }
  if (seen.kind === 'unreachable' || seen.kind === 'unavailable')
    return whileAway(state, seen, now, settings, timedOut);
  if (state.lostSince !== null) {
    say.push(`reached the service again after ${seconds(now - state.lostSince)} s`);
    state.lostSince = null;
    state.attempts = 0;
  }
  const [newest] = seen.items;
  if (!newest)
    return { kind: 'end', exit: EXIT.refused, say: [...say, 'the service lists no execution of the import'] };
  if (newest.id !== state.executionId) {
    const before = seen.items.find((e) => e.id === state.executionId);
    const ended = before
      ? `${before.status}${before.exitStatus?.description ? `: ${before.exitStatus.description}` : ''}`
      : 'ended';
    say.push(`execution ${state.executionId} ${ended}`);
    say.push(`the service started the import again, where it stopped, as execution ${newest.id}`);
    state.executionId = newest.id;
    state.failedSince = null;
  }
  state.executions = seen.items;
  switch (newest.status) {
    case 'COMPLETED':
      return {
        kind: 'end',
        exit: newest.exitStatus?.code === 'COMPLETED_WITH_SKIPS' ? EXIT.completedWithSkips : EXIT.completed,
        say,
      };
    case 'STOPPED':
    case 'ABANDONED':
      return { kind: 'end', exit: EXIT.failed, say };
    case 'FAILED':
      state.failedSince ??= now;
      if (now - state.failedSince >= settings.failedGraceMs) return { kind: 'end', exit: EXIT.failed, say };
      break;
    default:
      state.failedSince = null;
  }
  if (timedOut) {
    say.push(`--timeout passed while execution ${newest.id} was ${newest.status}; the import goes on in the service`);
    return { kind: 'end', exit: EXIT.timedOut, say };
  }
  return { kind: 'wait', ms: settings.pollMs, say };
}

/** The service could not be reached or could not answer: wait longer each time, until --timeout. */
function whileAway(
  state: FollowState,
  seen: Extract<Observation, { kind: 'unreachable' | 'unavailable' }>,
  now: number,
  settings: FollowSettings,
  timedOut: boolean,
): Move {
  state.lostSince ??= now;
  state.attempts += 1;
  const away = seconds(now - state.lostSince);
  if (timedOut) {
    const say = [`--timeout passed, the service away for ${away} s (${seen.reason}); the import goes on without us`];
    return { kind: 'end', exit: EXIT.unreachable, say };
  }
  const ms = Math.min(settings.maxBackoffMs, settings.firstBackoffMs * 2 ** Math.min(30, state.attempts - 1));
  const what = seen.kind === 'unreachable' ? 'cannot be reached' : 'cannot answer';
  return {
    kind: 'wait',
    ms,
    say: [`the service ${what} (${seen.reason}); retrying in ${seconds(ms)} s (attempt ${state.attempts})`],
  };
}

/** One look at the instance's executions; never throws. */
export async function look(service: ImportTarget, instanceId: string): Promise<Observation> {
  try {
    const response = await fetch(`${service.url}/api/jobs/executions?instanceId=${instanceId}&limit=20`, {
      headers: { 'x-api-key': service.apiKey },
      signal: AbortSignal.timeout(15_000),
    });
    return { kind: 'executions', items: (await answerOf<IJobExecutionList>(response)).items };
  } catch (error) {
    if (error instanceof BatchServiceError) {
      const again = ['UNAVAILABLE', 'RATE_LIMITED', 'INTERNAL'].includes(error.code);
      return again ? { kind: 'unavailable', reason: `${error.code}: ${error.message}` } : { kind: 'refused', error };
    }
    const reason = unreachableReason(error);
    if (reason) return { kind: 'unreachable', reason };
    return { kind: 'unavailable', reason: String(error) };
  }
}

/**
 * Why a request got no answer, as a person reads it (`connect ECONNREFUSED 127.0.0.1:3000`), when that is what
 * happened; null for anything else. fetch says only "fetch failed" and keeps the reason in `cause`.
 */
export function unreachableReason(error: unknown): string | null {
  const { name, message, cause } = (error ?? {}) as { name?: string; message?: string; cause?: unknown };
  if (name === 'TimeoutError') return 'no answer within 15 s';
  if (!(error instanceof TypeError) || cause === undefined) return null;
  const { code, message: why } = cause as { code?: string; message?: string };
  return why || code || message || 'no connection';
}

function seconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}
