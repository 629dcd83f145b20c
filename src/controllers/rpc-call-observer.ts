import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor } from '@nestjs/common';
import { RmqContext } from '@nestjs/microservices';
import { Observable, tap } from 'rxjs';
import { toBatchError } from '../services/batch-error';
import { withLogFields } from '../services/log-context';
import { Metrics } from '../services/metrics.service';
import { rpcRequestId } from './auth';

/**
 * Every RPC call runs with its request id, AMQP correlation id and pattern in the log context (so every line logged
 * while serving it carries them), and is timed with its outcome: OK or the contract's error code (one line at debug).
 */
@Injectable()
export class RpcCallObserver implements NestInterceptor {
  private readonly logger = new Logger('RpcCall');

  constructor(private readonly metrics: Metrics) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'rpc') return next.handle();
    const rmq = context.switchToRpc().getContext<RmqContext>();
    const pattern = rmq.getPattern();
    const correlationId: unknown = rmq.getMessage().properties?.correlationId;
    const fields = { requestId: rpcRequestId(rmq), correlationId: typeof correlationId === 'string' ? correlationId : undefined, pattern };
    const end = this.metrics.rpcDuration.startTimer({ pattern });
    const finish = (outcome: string) => {
      const durationMs = Math.round(end({ outcome }) * 1000);
      this.logger.debug({ outcome, durationMs }, `${pattern} ${outcome} in ${durationMs} ms`);
    };
    // next.handle() binds the async context it is called in, so it is called inside the log context
    return new Observable((subscriber) =>
      withLogFields(fields, () =>
        next
          .handle()
          .pipe(tap({ complete: () => finish('OK'), error: (error: unknown) => finish(toBatchError(error).code) }))
          .subscribe(subscriber),
      ),
    );
  }
}
