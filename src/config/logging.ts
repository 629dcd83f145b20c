import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Params } from 'nestjs-pino';
import pino, { Level, LoggerOptions } from 'pino';
import { pinoHttp } from 'pino-http';
import pretty from 'pino-pretty';
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

const ROOT_LOGGERS = new WeakMap<AppConfig, pino.Logger>();

/** The root logger of a configuration (made once): the Nest logger's (loggerParams) and the HTTP requests' (httpLogger). */
export function rootLogger(config: AppConfig): pino.Logger {
  let logger = ROOT_LOGGERS.get(config);
  if (!logger) ROOT_LOGGERS.set(config, (logger = createLogger(config)));
  return logger;
}

/**
 * JSON lines on stdout in production (ISO time, level as a word), one human-readable line per entry otherwise. Writes
 * are synchronous, so nothing is lost when the process exits.
 */
function createLogger(config: AppConfig): pino.Logger {
  const options: LoggerOptions = { level: config.logLevel };
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
 * nestjs-pino: the Nest logger writes through the root logger, and nothing more. Its per-request context (every line
 * logged while serving an HTTP request carrying that request's id) is left out: it rests on AsyncLocalStorage, whose
 * promise hooks cost every request of either transport a good share of a single create's CPU on Node 20 as soon as
 * one HTTP request, a probe, has run (performance log). Each request's own line carries its id instead (httpLogger, RpcServer),
 * and so do the errors logged for it (BatchErrorFilter).
 */
export function loggerParams(config: AppConfig): Params {
  return { pinoHttp: { logger: rootLogger(config) }, forRoutes: [] };
}

/**
 * One line per HTTP request, when it completes: its request id (the incoming `x-request-id`, or a new UUID, echoed in
 * the response and kept as `request.id`), method, URL, status and time. Headers are never logged (they hold API keys).
 */
export function httpLogger(config: AppConfig) {
  return pinoHttp({
    logger: rootLogger(config),
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
  });
}
