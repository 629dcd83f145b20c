export * from '../interfaces/operation.interfaces';
export * from '../interfaces/job.interfaces';
export { BatchServiceClientModule } from './batch-service-client.module';
export { BatchServiceClient, BatchServiceClientOptions, BatchServiceError } from './batch-service.client';
export { JobFinishedConsumer, SettledEventsConsumer, SettledEventsOptions } from './settled-events.consumer';
