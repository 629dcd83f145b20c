export * from '../interfaces/operation.interfaces';
export * from '../interfaces/job.interfaces';
export { BatchServiceClientModule } from './batch-service-client.module';
export { BatchServiceClient, BatchServiceClientOptions } from './batch-service.client';
export { BatchServiceError } from './batch-service.error';
export { JobFinishedConsumer, SettledEventsConsumer, SettledEventsOptions } from './settled-events.consumer';
export { importFile, ImportParams, ImportTarget } from './import-file';
