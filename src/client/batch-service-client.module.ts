import { DynamicModule, Module } from '@nestjs/common';
import { BatchServiceClient, BatchServiceClientOptions } from './batch-service.client';

/**
 * What another NestJS service imports to call the Batch Service:
 * `BatchServiceClientModule.register({ url, apiKey })`, then inject `BatchServiceClient`.
 */
@Module({})
export class BatchServiceClientModule {
  static register(options: BatchServiceClientOptions): DynamicModule {
    return {
      module: BatchServiceClientModule,
      providers: [{ provide: BatchServiceClient, useFactory: () => new BatchServiceClient(options) }],
      exports: [BatchServiceClient],
    };
  }

  static registerAsync(options: {
    imports?: DynamicModule['imports'];
    inject?: never[];
    useFactory: (...args: never[]) => BatchServiceClientOptions | Promise<BatchServiceClientOptions>;
  }): DynamicModule {
    return {
      module: BatchServiceClientModule,
      imports: options.imports ?? [],
      providers: [
        {
          provide: BatchServiceClient,
          inject: options.inject ?? [],
          useFactory: async (...args: never[]) => new BatchServiceClient(await options.useFactory(...args)),
        },
      ],
      exports: [BatchServiceClient],
    };
  }
}
