import type { NextFunction, Request, Response } from 'express';
import { BatchError } from '../services/batch-error';

/** How long a caller refused for bytes in flight is asked to wait: about one request's handling. */
const RETRY_AFTER_MS = 100;

/**
 * A budget of request bytes handled at once by this process, over both transports, so that memory is bounded by the
 * budget, not by how many large requests arrive together (each byte of a body is held several times over while it is
 * parsed, checked and stored). A request fits while the bytes in flight stay within the budget; one alone always does.
 * REST requests that do not fit are refused with RATE_LIMITED before their body is read; RPC messages, already
 * delivered (the prefetch bounds those), wait their turn.
 */
export class BytesInFlight {
  private bytes = 0;
  private readonly waiting: { bytes: number; admitted(release: () => void): void }[] = [];

  constructor(private readonly budget: number) {}

  /** Takes `bytes` from the budget; returns their release, or throws RATE_LIMITED when they do not fit now. */
  admit(bytes: number): () => void {
    if (!this.fits(bytes) || this.waiting.length > 0)
      throw new BatchError('RATE_LIMITED', `The service is handling ${this.budget} bytes of requests already; retry`, {
        retryAfterMs: RETRY_AFTER_MS,
      });
    return this.take(bytes);
  }

  /**
   * Takes `bytes` from the budget once they fit, after those that waited before: their release, at once when they fit
   * now (nothing to wait for on the way of nearly every message), else a promise of it.
   */
  acquire(bytes: number): (() => void) | Promise<() => void> {
    if (this.fits(bytes) && this.waiting.length === 0) return this.take(bytes);
    return new Promise((admitted) => this.waiting.push({ bytes, admitted }));
  }

  private fits(bytes: number): boolean {
    return this.bytes === 0 || this.bytes + bytes <= this.budget;
  }

  private take(bytes: number): () => void {
    this.bytes += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.bytes -= bytes;
      while (this.waiting.length > 0 && this.fits(this.waiting[0].bytes)) {
        const next = this.waiting.shift()!;
        next.admitted(this.take(next.bytes));
      }
    };
  }

  /**
   * Express middleware before the body parser: a request's body counts from its arrival to its response (its declared
   * length, or `maxBytes` when it has none, a chunked body, which the parser still holds to that limit). Only a caller
   * that `authenticate` accepts is given any of the budget, and only a length within `maxBytes`: anyone else is answered
   * at once, the connection closed without reading the body, so that no one can hold the budget with a body announced
   * and never sent.
   */
  forHttp(maxBytes: number, authenticate: (request: Request) => Promise<unknown>) {
    return (request: Request, response: Response, next: NextFunction): void => {
      const declared = Number(request.headers['content-length']);
      const bytes = Number.isFinite(declared) ? declared : request.headers['transfer-encoding'] ? maxBytes : 0;
      if (bytes === 0) return next();
      const unread = (error: unknown) => {
        response.set('Connection', 'close');
        next(error);
      };
      if (bytes > maxBytes)
        return unread(new BatchError('PAYLOAD_TOO_LARGE', `A body of ${bytes} bytes is over the limit of ${maxBytes}`));
      authenticate(request).then(() => {
        try {
          response.once('close', this.admit(bytes));
          next();
        } catch (error) {
          request.resume(); // the body is not read; drained, so the connection can answer and be reused
          next(error);
        }
      }, unread);
    };
  }
}
