import type { ICreateBatchOperationRequest } from '../src/client';

/** The target every figure writes: five columns of common types. */
export const TABLE = `(id int PRIMARY KEY, qty int NOT NULL, price numeric(12,2), note text, at timestamptz)`;
export const TYPES = ['insert', 'upsert', 'update', 'increment', 'delete'] as const;
export type Type = (typeof TYPES)[number];

/** Operation i (1-based) of a backlog of one type, as a caller sends it. */
export function operation(type: Type, i: number): ICreateBatchOperationRequest {
  const row = { id: i, qty: i % 100, price: (i % 1000) / 10, note: `note ${i}`, at: '2026-11-21T10:00:00Z' };
  switch (type) {
    case 'insert':
    case 'upsert':
      return { target: 'bench', type, values: row };
    case 'update':
      return { target: 'bench', type, key: { id: i }, values: { qty: i % 7, note: `updated ${i}` } };
    case 'increment':
      return { target: 'bench', type, key: { id: i }, values: { qty: 1 } };
    case 'delete':
      return { target: 'bench', type, key: { id: i } };
  }
}

/** Row i as COPY's text format reads it (the same values as operation i's insert). */
export const copyLine = (i: number) => `${i}\t${i % 100}\t${(i % 1000) / 10}\tnote ${i}\t2026-11-21T10:00:00Z\n`;
