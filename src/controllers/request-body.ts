import type { NextFunction, Request, Response } from 'express';
import { BatchError } from '../services/batch-error';
import {
  decimalOf,
  JsonNumber,
  mayBeInexact,
  numericRangeProblem,
  parseJson,
  stringifyJson,
} from '../services/exact-json';

/**
 * What every request body must be before any handler sees it, over both transports: JSON nested at most
 * MAX_PAYLOAD_DEPTH levels, numbers taken exactly (exact-json.ts) and within what PostgreSQL can hold, and well-formed
 * Unicode (a lone surrogate, `"\ud800"`, is valid JSON text that PostgreSQL refuses).
 */
export const MAX_PAYLOAD_DEPTH = 64;

const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * What in JSON text could parse to a lone surrogate (text decoded from UTF-8 holds none: only an escape of one can),
 * or to a number kept exactly (mayBeInexact), which must be within PostgreSQL's range. Text without either has
 * nothing payloadProblem looks for but its nesting, which nestingOver counts on the text.
 */
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

/** Whether payloadProblem must walk the body parsed from this text; when false, it would find nothing. */
export function mayBeUnacceptable(text: string): boolean {
  return SURROGATE_ESCAPE.test(text) || mayBeInexact(text);
}

/** Why the parsed body cannot be taken as it is, or null. Iterative, so no nesting can overflow the stack. */
export function payloadProblem(body: unknown): string | null {
  const stack: [unknown, number][] = [[body, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value instanceof JsonNumber) {
      const decimal = decimalOf(value.text); // null where even its exponent is beyond a safe integer
      const problem = decimal ? numericRangeProblem(decimal) : 'has an exponent beyond any range';
      if (problem) return `a number ${problem}, more than PostgreSQL holds`;
    } else if (typeof value === 'string') {
      if (LONE_SURROGATE.test(value)) return 'a string holds a lone UTF-16 surrogate (not Unicode text)';
    } else if (value !== null && typeof value === 'object') {
      if (depth >= MAX_PAYLOAD_DEPTH) return `the body is nested deeper than ${MAX_PAYLOAD_DEPTH} levels`;
      for (const [key, child] of Object.entries(value)) {
        if (LONE_SURROGATE.test(key)) return 'a field name holds a lone UTF-16 surrogate (not Unicode text)';
        stack.push([child, depth + 1]);
      }
    }
  }
  return null;
}

/**
 * The nesting depth of JSON text, counted without parsing it, up to `limit` (bodies are refused before a parser or
 * anything recursive meets them).
 */
export function nestingOver(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** A message of the RPC queue: a request (with its `id`) or an event (without: NestJS's `emit`). */
export interface RpcRequest {
  pattern: string;
  id: string | undefined;
  data: unknown;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads one message of the RPC queue as the NestJS wire format `{"pattern", "id", "data"}` (an event has no `id`), or
 * says why it is none: PAYLOAD_TOO_LARGE over `maxBytes` (the raw bytes, before anything is parsed), else
 * VALIDATION_FAILED.
 */
export function readRpcRequest(content: Buffer, maxBytes: number): RpcRequest | { problem: BatchError } {
  const refuse = (message: string) => ({ problem: new BatchError('VALIDATION_FAILED', message) });
  if (content.length > maxBytes) {
    return {
      problem: new BatchError(
        'PAYLOAD_TOO_LARGE',
        `Message of ${content.length} bytes is over the limit of ${maxBytes}`,
      ),
    };
  }
  let text: string;
  try {
    text = UTF8.decode(content);
  } catch {
    return refuse('The message is not UTF-8 text');
  }
  if (nestingOver(text, MAX_PAYLOAD_DEPTH))
    return refuse(`The message is nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  let body: unknown;
  try {
    body = parseJson(text);
  } catch {
    return refuse('The message is not JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return refuse('The message must be a JSON object {"pattern", "id", "data"}');
  const { pattern, id, data } = body as Record<string, unknown>;
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > 100)
    return refuse('The message needs a string "pattern" (1..100 characters)');
  if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > 200 || id.includes('\u0000'))) {
    return refuse('A request needs a string "id" (1..200 characters, no NUL), unique per request');
  }
  const problem = mayBeUnacceptable(text) ? payloadProblem(body) : null;
  if (problem) return refuse(`The message is not acceptable: ${problem}`);
  return { pattern, id, data };
}

/** The content types read as JSON: application/json and application/*+json, as body-parser's json parser takes them. */
export const JSON_CONTENT_TYPES = ['application/json', 'application/*+json'];

/** A declared charset other than UTF-8, which JSON exchanged between systems must be (RFC 8259). */
const OTHER_CHARSET = /;\s*charset\s*=(?!\s*"?utf-?8"?\s*(?:;|$))/i;

/**
 * Express middleware after the raw body parser (for JSON_CONTENT_TYPES): a REST body read as the RPC reader reads a
 * message, its bytes UTF-8 (another charset could carry what UTF-8 cannot, such as a lone surrogate), nesting counted
 * on the text, numbers exact (parseJson), and held to payloadProblem(); an object or an array, as body-parser's strict
 * json parser wants.
 */
export function readJsonBody(request: Request, _response: Response, next: NextFunction): void {
  const bytes: unknown = request.body;
  if (!Buffer.isBuffer(bytes)) return next();
  if (bytes.length === 0) {
    request.body = {}; // as body-parser's json parser reads an empty body
    return next();
  }
  const refuse = (message: string) => next(new BatchError('VALIDATION_FAILED', message));
  if (OTHER_CHARSET.test(request.get('content-type') ?? '')) return refuse('A JSON body must be UTF-8 (charset=utf-8)');
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return refuse('The body is not UTF-8 text');
  }
  if (nestingOver(text, MAX_PAYLOAD_DEPTH)) return refuse(`The body is nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  let body: unknown;
  try {
    body = parseJson(text);
  } catch (error) {
    return refuse(`Malformed JSON body: ${(error as Error).message}`);
  }
  if (body === null || typeof body !== 'object') return refuse('The body must be a JSON object or array');
  const problem = mayBeUnacceptable(text) ? payloadProblem(body) : null;
  if (problem) return refuse(`The body is not acceptable: ${problem}`);
  request.body = body;
  next();
}

/** Express middleware: JSON responses written by stringifyJson, so that exact numbers go out as they came in. */
export function writeExactJson(_request: Request, response: Response, next: NextFunction): void {
  response.json = (body: unknown) => {
    if (!response.get('Content-Type')) response.type('json');
    return response.send(stringifyJson(body));
  };
  next();
}
