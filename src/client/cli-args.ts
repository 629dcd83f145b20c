import { parseArgs } from 'node:util';
import { BatchServiceError } from './batch-service.error';
import type { ImportParams, ImportTarget } from './import-file';

/** How the command line ends: the code tells a script what happened without reading the output. */
export const EXIT = {
  /** The import completed, no record rejected. */
  completed: 0,
  /** The import failed for good (no restart follows), or was stopped or abandoned. */
  failed: 1,
  /**
   * The arguments were wrong, or the service refused the upload (key, grants, columns …: nothing was launched), or
   * refused to show the import later (the key revoked meanwhile).
   */
  refused: 2,
  /** The service could not be reached: the upload did not get through, or the service was still away at --timeout. */
  unreachable: 3,
  /** The import completed, and rejected records within --skip-limit: they are listed. */
  completedWithSkips: 4,
  /** --timeout passed while the import still ran; it goes on in the service. */
  timedOut: 5,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const USAGE = `batch-service import <file> --target <table> [options]

Uploads a CSV or NDJSON file (optionally .gz) to the Batch Service, which loads it into the table, and follows the
load to its end: progress on the terminal, then the rejected records. It follows the import through a lost
connection (retrying, and saying so) and through the restart the service makes after a crash, until the import
completes, fails for good, or --timeout passes.

  --target <table>         the table loaded (required)
  --mode insert|upsert     default insert
  --conflict-key <a,b>     upsert: a unique key (default the primary key)
  --format csv|ndjson      default from the file name
  --no-header              CSV: the first record is data; --columns names the fields
  --columns <a,b,c>        CSV without a header: the columns in file order
  --delimiter <c>  --quote <c>  --null <text>
  --skip-limit <n>         records that may be rejected (default 0)
  --chunk-size <n>         records per transaction
  --run-id <text>          load the same file once more (a file already loaded is refused without it)
  --timeout <duration>     stop following after this long (90, 90s, 15m, 2h); the import goes on
  --url <url>              the service (default $BATCH_SERVICE_URL or http://127.0.0.1:3000)
  --key <key>              the API key (default $BATCH_API_KEY)

Exit codes:
  0  completed
  1  failed (no restart follows), or stopped
  2  refused: the arguments, or the service refused the upload (nothing launched) or the key
  3  the service could not be reached (for the upload, or still away when --timeout passed)
  4  completed, with rejected records (within --skip-limit): they are listed
  5  --timeout passed while the import ran: it goes on in the service`;

const FLAGS = {
  target: { type: 'string' },
  mode: { type: 'string' },
  'conflict-key': { type: 'string' },
  format: { type: 'string' },
  'no-header': { type: 'boolean' },
  columns: { type: 'string' },
  delimiter: { type: 'string' },
  quote: { type: 'string' },
  null: { type: 'string' },
  'skip-limit': { type: 'string' },
  'chunk-size': { type: 'string' },
  'run-id': { type: 'string' },
  timeout: { type: 'string' },
  url: { type: 'string' },
  key: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * The flag that sets each of the import's query parameters, for the service's messages about one to name the flag.
 * Not `header` nor `columns`: the service says those of the file's own header too.
 */
const FLAG_OF_PARAMETER: Record<string, string> = {
  target: '--target',
  mode: '--mode',
  conflictKey: '--conflict-key',
  format: '--format',
  delimiter: '--delimiter',
  quote: '--quote',
  null: '--null',
  skipLimit: '--skip-limit',
  chunkSize: '--chunk-size',
  runId: '--run-id',
};

export type Command =
  | { kind: 'help' }
  /** The arguments cannot make an import: `problem` says which and how to mend it. */
  | { kind: 'wrong'; problem: string }
  | { kind: 'import'; file: string; service: ImportTarget; params: ImportParams; timeoutMs: number | null };

class Wrong extends Error {}

/** The command line read, checked as far as it can be without the service. */
export function parseCommand(argv: string[], env: Record<string, string | undefined>): Command {
  try {
    return readCommand(argv, env);
  } catch (error) {
    if (error instanceof Wrong) return { kind: 'wrong', problem: error.message };
    const code = (error as { code?: string }).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']*)'/.exec((error as Error).message)?.[1] ?? '';
      return { kind: 'wrong', problem: `there is no option ${option}: --help lists them` };
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const flag = /'(--[\w-]+)/.exec((error as Error).message)?.[1] ?? 'an option';
      return { kind: 'wrong', problem: `${flag} needs a value` };
    }
    throw error;
  }
}

function readCommand(argv: string[], env: Record<string, string | undefined>): Command {
  const { values, positionals } = parseArgs({ args: argv, options: FLAGS, allowPositionals: true, strict: true });
  if (values.help) return { kind: 'help' };
  const [command, file, ...rest] = positionals;
  if (command === undefined) throw new Wrong('say what to do: batch-service import <file> --target <table>');
  if (command !== 'import') throw new Wrong(`there is no command "${command}": the command is import`);
  if (file === undefined) throw new Wrong('missing the file to import: batch-service import <file> --target <table>');
  if (rest.length > 0) throw new Wrong(`one file at a time: "${rest[0]}" is one too many`);
  if (!values.target) throw new Wrong('missing --target <table>: the table the file is loaded into');
  const params: ImportParams = {
    target: values.target,
    mode: oneOf('--mode', values.mode, ['insert', 'upsert'] as const),
    conflictKey: values['conflict-key'],
    format: oneOf('--format', values.format, ['csv', 'ndjson'] as const),
    header: values['no-header'] ? false : undefined,
    columns: values.columns,
    delimiter: values.delimiter,
    quote: values.quote,
    null: values.null,
    skipLimit: count('--skip-limit', values['skip-limit'], 0, 'records that may be rejected'),
    chunkSize: count('--chunk-size', values['chunk-size'], 1, 'records per transaction'),
    runId: values['run-id'],
  };
  const timeoutMs = values.timeout === undefined ? null : duration(values.timeout);
  const url = values.url ?? env.BATCH_SERVICE_URL ?? 'http://127.0.0.1:3000';
  if (!/^https?:\/\/[^/]/.test(url))
    throw new Wrong(
      `--url must be the service's http:// or https:// address, such as http://127.0.0.1:3000, not "${url}"`,
    );
  const apiKey = values.key ?? env.BATCH_API_KEY;
  if (!apiKey) throw new Wrong('missing --key <key> (or $BATCH_API_KEY): the API key of the client loading the file');
  return { kind: 'import', file, service: { url: url.replace(/\/+$/, ''), apiKey }, params, timeoutMs };
}

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined || allowed.includes(value as T)) return value as T | undefined;
  throw new Wrong(`${flag} is ${allowed.join(' or ')}, not "${value}"`);
}

function count(flag: string, value: string | undefined, least: number, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d{1,15}$/.test(value) && Number(value) >= least) return Number(value);
  throw new Wrong(`${flag} takes a whole number of ${what}, ${least} or more, not "${value}"`);
}

/** `90`, `90s`, `15m`, `2h` (`1.5h` too) in milliseconds. */
export function duration(value: string): number {
  const unit: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };
  const match = /^(\d+(?:\.\d+)?)\s*(s|m|h)?$/.exec(value.trim());
  const ms = match ? Number(match[1]) * unit[match[2] ?? 's'] : 0;
  if (ms > 0) return ms;
  throw new Wrong(`--timeout is a duration such as 90 (seconds), 90s, 15m or 2h, not "${value}"`);
}

/** A refused upload as the command line's user mends it: with its flags, and for a 409 what to do instead. */
export function refusal(error: unknown): string {
  if (!(error instanceof BatchServiceError)) return String(error);
  const { reason, executionId } = (error.details ?? {}) as { reason?: string; executionId?: string };
  if (error.code === 'CONFLICT' && reason === 'JOB_INSTANCE_COMPLETE')
    return (
      `CONFLICT: this file was loaded with these settings already (execution ${executionId}); ` +
      'to load it once more, add --run-id <any text>'
    );
  if (error.code === 'CONFLICT' && reason === 'JOB_EXECUTION_RUNNING')
    return (
      `CONFLICT: the same import is running now (execution ${executionId}); wait for it, or add --run-id ` +
      '<any text> to load the file once more beside it'
    );
  if (error.code === 'CONFLICT' && reason === 'START_LIMIT_EXCEEDED')
    return `CONFLICT: ${inFlags(error.message)}; add --run-id <any text> to load the file as a new import`;
  return `${error.code}: ${inFlags(error.message)}`;
}

/** The service's names of the import's parameters (`skipLimit`, `options.skipLimit`) as the flags that set them. */
function inFlags(message: string): string {
  return message.replace(/\b(?:options\.|parameters\.)?([a-zA-Z]+)(?=:)/g, (name, parameter) =>
    Object.hasOwn(FLAG_OF_PARAMETER, parameter) ? FLAG_OF_PARAMETER[parameter] : name,
  );
}
