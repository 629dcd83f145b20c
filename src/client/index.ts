export * from '../interfaces/operation.interfaces';
export { BatchServiceClientModule } from './batch-service-client.module';
export { BatchServiceClient, BatchServiceClientOptions, BatchServiceError } from './batch-service.client';
export { SettledEventsConsumer, SettledEventsOptions } from './settled-events.consumer';
