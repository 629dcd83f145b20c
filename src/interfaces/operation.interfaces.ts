/** The public API (docs/api.md): what callers send and receive. */

export const OPERATION_TYPES = ['insert', 'upsert', 'update', 'delete', 'increment'] as const;
export type OperationType = (typeof OPERATION_TYPES)[number];

export const OPERATION_STATUSES = ['PENDING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type OperationStatus = (typeof OPERATION_STATUSES)[number];

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type RowValues = Record<string, JsonValue>;

export interface ICreateBatchOperationRequest {
  target: string;
  type: OperationType;
  values?: RowValues;
  key?: RowValues;
  conflictKey?: string[];
  idempotencyKey?: string;
  priority?: number;
  notBefore?: string;
  label?: string;
}

export interface ICreateBatchOperationsRequest {
  operations: ICreateBatchOperationRequest[];
}

export interface ICreateBatchOperationResponse {
  id: string;
  status: OperationStatus;
  createdAt: string;
  duplicate: boolean;
}

export interface ICreateBatchOperationsResponse {
  operations: ICreateBatchOperationResponse[];
}

export interface IOperationIdRequest {
  id: string;
}

export interface IOperationError {
  code: string;
  message: string;
}

export interface IGetBatchOperationResponse {
  id: string;
  target: string;
  type: OperationType;
  values: RowValues | null;
  key: RowValues | null;
  conflictKey: string[] | null;
  idempotencyKey: string | null;
  label: string | null;
  priority: number;
  notBefore: string | null;
  status: OperationStatus;
  attempts: number;
  rowsAffected: number | null;
  error: IOperationError | null;
  executionId: string | null;
  createdAt: string;
  updatedAt: string;
  settledAt: string | null;
}

export interface IOperationListResponse {
  items: IGetBatchOperationResponse[];
  nextCursor: string | null;
}

/** One settled operation inside an `operations.settled` notification. */
export interface ISettledOperation {
  id: string;
  status: 'COMPLETED' | 'FAILED';
  rowsAffected: number | null;
  error: IOperationError | null;
  target: string;
  type: OperationType;
  idempotencyKey: string | null;
  label: string | null;
}

export interface IOperationsSettledEvent {
  type: 'operations.settled';
  client: string;
  executionId: string;
  settledAt: string;
  operations: ISettledOperation[];
}

export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'UNKNOWN_TARGET',
  'UNKNOWN_COLUMN',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'REQUEST_TIMEOUT',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'RATE_LIMITED',
  'UNAVAILABLE',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The error body, as `err` over RPC and as the JSON body over REST. */
export interface IBatchErrorResponse {
  status: 'error';
  code: ErrorCode;
  message: string;
  details?: unknown;
}

/** The RPC patterns of the queue BATCH_SERVICE_RMQ_QUEUE. */
export const BATCH_PATTERNS = {
  createOperation: 'createOperation',
  createOperations: 'createOperations',
  getOperation: 'getOperation',
  cancelOperation: 'cancelOperation',
} as const;

/** The patterns also taken as events (NestJS `emit`: no answer); any other sent as an event is refused. */
export const BATCH_EVENT_PATTERNS: readonly string[] = [
  BATCH_PATTERNS.createOperation,
  BATCH_PATTERNS.createOperations,
];

export const SETTLED_ROUTING_KEY_PREFIX = 'operations.settled.';
