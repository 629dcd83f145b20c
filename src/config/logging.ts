import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Params } from 'nestjs-pino';
import pino, { Level, LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import { logFields } from './log-context';
import { AppConfig } from './app-config';

/** An incoming `x-request-id` is kept when it is 1..128 visible ASCII characters; otherwise one is generated. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;
/** Probes and scrapes: logged at debug when they succeed, so that they do not flood the log. */
const PROBE_PATH = /^\/(health|health\/live|metrics)\/?(\?|$)/;

export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
}

/** The level of an HTTP request's log line: server errors at error, failed probes at warn, successful probes at debug. */
export function httpLogLevel(url: string, statusCode: number, error?: unknown): Level {
  if (PROBE_PATH.test(url)) return statusCode < 400 && !error ? 'debug' : 'warn';
  return error || statusCode >= 500 ? 'error' : 'info';
}

/**
 * The root logger: JSON lines on stdout in production (ISO time, level as a word), one human-readable line per entry
 * otherwise. Every line carries the fields of the unit of work it was written in (see log-context.ts). Writes are
 * synchronous, so nothing is lost when the process exits.
 */
export function createLogger(config: AppConfig): pino.Logger {
  const options: LoggerOptions = { level: config.logLevel, mixin: logFields };
  if (config.nodeEnv === 'production') {
    return pino(
      { ...options, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } },
      pino.destination({ dest: 1, sync: true }),
    );
  }
  const readable = pretty({
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,context,req,res,responseTime',
    messageFormat: '{if context}[{context}] {end}{msg}',
    singleLine: true,
  });
  return pino(options, readable);
}

function urlOf(req: IncomingMessage): string {
  return (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
}

/**
 * nestjs-pino: the Nest logger writes through the root logger; each HTTP request gets a request id (the incoming
 * `x-request-id`, or a new UUID, echoed in the response) that every line logged while serving it carries as
 * `requestId`, and one line when it completes. Headers are never logged (they hold API keys).
 */
export function loggerParams(config: AppConfig): Params {
  return {
    pinoHttp: {
      logger: createLogger(config),
      genReqId: (req: IncomingMessage, res: ServerResponse) => {
        const id = requestIdOf(req.headers['x-request-id']);
        res.setHeader('x-request-id', id);
        return id;
      },
      quietReqLogger: true,
      customAttributeKeys: { reqId: 'requestId' },
      customLogLevel: (req, res, error) => httpLogLevel(urlOf(req), res.statusCode, error),
      customSuccessMessage: (req, res, responseTime) =>
        `${req.method} ${urlOf(req)} ${res.statusCode} in ${responseTime} ms`,
      customErrorMessage: (req, res, error) => `${req.method} ${urlOf(req)} ${res.statusCode}: ${error.message}`,
      serializers: {
        req: (req: { method: string; url: string }) => ({ method: req.method, url: req.url }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
    },
  };
}
