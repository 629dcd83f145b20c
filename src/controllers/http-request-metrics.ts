import type { NextFunction, Request, Response } from 'express';
import { Metrics } from '../services/observability/metrics.service';

/** The route a request matched, as declared (`/api/operations/:id`), or `unmatched`: bounded label values. */
export function routeOf(request: Pick<Request, 'baseUrl'> & { route?: { path?: unknown } }): string {
  const path = request.route?.path;
  return typeof path === 'string' ? `${request.baseUrl ?? ''}${path}` : 'unmatched';
}

/** Express middleware timing every HTTP request, from its arrival to its last byte, by method, route and status code. */
export function httpRequestMetrics(metrics: Metrics) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const end = metrics.httpDuration.startTimer();
    response.once('finish', () =>
      end({ method: request.method, route: routeOf(request), code: String(response.statusCode) }),
    );
    next();
  };
}
