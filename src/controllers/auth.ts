import { CanActivate, createParamDecorator, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { RmqContext } from '@nestjs/microservices';
import type { Request } from 'express';
import { BatchError } from '../services/batch-error';
import { AuthenticatedClient, ClientService } from '../services/access/client.service';
import { RateLimiter } from '../services/access/rate-limiter.service';

/** The authenticated caller of each request (HTTP request object or RMQ context). */
const CALLERS = new WeakMap<object, AuthenticatedClient>();
const PUBLIC = 'batch:public';
const ADMIN = 'batch:admin';

/** No API key needed (health, metrics, dashboard). */
export const Public = () => SetMetadata(PUBLIC, true);
/** Only an admin client may call it. */
export const AdminOnly = () => SetMetadata(ADMIN, true);

/** The authenticated client of the request. */
export const Caller = createParamDecorator((_: unknown, context: ExecutionContext): AuthenticatedClient => {
  const holder =
    context.getType() === 'rpc'
      ? context.switchToRpc().getContext<RmqContext>()
      : context.switchToHttp().getRequest<Request>();
  const client = CALLERS.get(holder);
  if (!client) throw new BatchError('UNAUTHENTICATED', 'Missing or invalid API key');
  return client;
});

/** The API key a REST request carries: `x-api-key`, or `Authorization: Bearer <key>`. */
export function apiKeyOf(request: Request): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string') return header;
  const authorization = request.headers.authorization;
  return authorization?.startsWith('Bearer ') ? authorization.slice('Bearer '.length).trim() : undefined;
}

/** What a request costs against the client's rate limit: its number of operations, at least 1. */
function costOf(body: unknown): number {
  const operations = (body as { operations?: unknown } | null)?.operations;
  return Array.isArray(operations) ? Math.max(1, operations.length) : 1;
}

/** Remembers the authenticated client of a request (HTTP request object or RMQ context) for @Caller(). */
function setCaller(holder: object, client: AuthenticatedClient): void {
  CALLERS.set(holder, client);
}

/**
 * Who may call, for both transports, then the client's rate limit:
 * - REST: `x-api-key` or `Authorization: Bearer <key>`; admin-only routes; routes marked @Public need no key.
 * - RPC: the AMQP header `x-api-key` (the message's size and shape are checked before, by RpcServer).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly clients: ClientService,
    private readonly rateLimiter: RateLimiter,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() === 'rpc')
      return this.admitRpc(context.switchToRpc().getContext<RmqContext>(), context.switchToRpc().getData());
    if (context.getType() !== 'http') return true;
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) return true;
    const request = context.switchToHttp().getRequest<Request>();
    const client = await this.clients.authenticate(apiKeyOf(request));
    if (this.reflector.getAllAndOverride<boolean>(ADMIN, targets) && !client.admin) {
      throw new BatchError('FORBIDDEN', 'Only an admin client may do this');
    }
    await this.rateLimiter.consume(client, costOf(request.body));
    setCaller(request, client);
    return true;
  }

  private async admitRpc(rmq: RmqContext, data: unknown): Promise<boolean> {
    const message = rmq.getMessage();
    const header: unknown = message.properties.headers?.['x-api-key'];
    const client = await this.clients.authenticate(typeof header === 'string' ? header : undefined);
    await this.rateLimiter.consume(client, costOf(data));
    setCaller(rmq, client);
    return true;
  }
}
