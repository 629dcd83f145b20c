import { Injectable } from '@nestjs/common';
import { SkipPolicy } from '../interfaces/chunk.interfaces';

/**
 * Transient SQLSTATEs: serialization failure, deadlock, lock timeout, statement cancelled, admin shutdown,
 * connection failures and insufficient resources. These roll the chunk back to be retried; anything else the
 * database refuses is the operation's own fault and ends it FAILED.
 */
const TRANSIENT_SQLSTATE = /^(40001|40P01|55P03|57014|57P0[1-3]|08...|53...)$/;

export function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== 'string') return true; // not the database's answer: the connection or the process is at fault
  return TRANSIENT_SQLSTATE.test(code) || !/^[0-9A-Z]{5}$/.test(code);
}

/** Skips (fails) the operation on data errors: constraint, cast, check, foreign key, trigger exceptions. */
@Injectable()
export class DataErrorSkipPolicy extends SkipPolicy {
  shouldSkip(error: unknown): boolean {
    return !isTransient(error);
  }
}
