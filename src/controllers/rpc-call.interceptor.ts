import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor } from '@nestjs/common';
import { RmqContext } from '@nestjs/microservices';
import { from, Observable, switchMap, tap } from 'rxjs';
import { AppConfig } from '../config/app-config';
import { BatchError, toBatchError } from '../services/batch-error';
import { ClientService } from '../services/client.service';
import { withLogFields } from '../services/log-context';
import { Metrics } from '../services/metrics.service';
import { RateLimiter } from '../services/rate-limiter.service';
import { ackOnce, costOf, rpcRequestId, setCaller } from './auth';

/**
 * Every RPC call, in one interceptor (each one costs an async-context binding per call):
 * - runs with its request id, AMQP correlation id and pattern in the log context, so every line logged while
 *   serving it carries them, and is timed with its outcome: OK or the contract's error code (one line at debug);
 * - checks the message size, authenticates the AMQP header `x-api-key` and applies the rate limit;
 * - acknowledges the request only when the handler has finished, so a request is acknowledged once its operation
 *   is durably stored (or rejected), never before.
 */
@Injectable()
export class RpcCallInterceptor implements NestInterceptor {
  private readonly logger = new Logger('RpcCall');

  constructor(
    private readonly clients: ClientService,
    private readonly rateLimiter: RateLimiter,
    private readonly config: AppConfig,
    private readonly metrics: Metrics,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'rpc') return next.handle();
    const rmq = context.switchToRpc().getContext<RmqContext>();
    const message = rmq.getMessage();
    const pattern = rmq.getPattern();
    const correlationId: unknown = message.properties.correlationId;
    const fields = { requestId: rpcRequestId(rmq), correlationId: typeof correlationId === 'string' ? correlationId : undefined, pattern };
    const end = this.metrics.rpcDuration.startTimer({ pattern });
    const finish = (outcome: string) => {
      ackOnce(rmq);
      const durationMs = Math.round(end({ outcome }) * 1000);
      this.logger.debug({ outcome, durationMs }, `${pattern} ${outcome} in ${durationMs} ms`);
    };
    // next.handle() binds the async context it is called in, so it is called inside the log context
    return new Observable((subscriber) =>
      withLogFields(fields, () =>
        from(this.admit(rmq, context.switchToRpc().getData()))
          .pipe(
            switchMap(() => next.handle()),
            tap({ complete: () => finish('OK'), error: (error: unknown) => finish(toBatchError(error).code) }),
          )
          .subscribe(subscriber),
      ),
    );
  }

  private async admit(rmq: RmqContext, data: unknown): Promise<void> {
    const message = rmq.getMessage();
    const { maxMessageBytes } = this.config.limits;
    if (message.content.length > maxMessageBytes) {
      throw new BatchError('PAYLOAD_TOO_LARGE', `Message of ${message.content.length} bytes is over the limit of ${maxMessageBytes}`);
    }
    const header: unknown = message.properties.headers?.['x-api-key'];
    const client = await this.clients.authenticate(typeof header === 'string' ? header : undefined);
    await this.rateLimiter.consume(client, costOf(data));
    setCaller(rmq, client);
  }
}
