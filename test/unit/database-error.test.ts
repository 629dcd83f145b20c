import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CHUNK_FAILURE_SQLSTATE,
  isConcurrencyConflict,
  logReason,
  publicReason,
  sqlState,
} from '../../src/services/storage/database-error';

const pgError = (code: string, extra: Record<string, string> = {}) =>
  Object.assign(new Error(`error ${code}: "BOB-SECRET-1"`), { code, ...extra });

describe('publicReason (what every client of a chunk may read)', () => {
  it('names the SQLSTATE and the constraint or column, never the message that may quote a value', () => {
    assert.equal(publicReason(pgError('22P02')), 'SQLSTATE 22P02');
    assert.equal(
      publicReason(pgError('23505', { constraint: 'accounts_email_key' })),
      'SQLSTATE 23505 (constraint accounts_email_key)',
    );
    assert.equal(publicReason(pgError('23502', { column: 'email' })), 'SQLSTATE 23502 (column email)');
    for (const error of [pgError('22P02'), pgError('23505', { constraint: 'c' })])
      assert.doesNotMatch(publicReason(error), /SECRET/);
  });

  it('names only the kind of anything that is not the database answering', () => {
    assert.equal(
      publicReason(new RangeError('Invalid string length BOB-SECRET-1')),
      'an error in the service (RangeError)',
    );
    assert.equal(publicReason(new Error('Connection terminated unexpectedly')), 'the database connection failed');
    assert.equal(publicReason(null), 'an error in the service (object)');
  });
});

describe('logReason (the service log)', () => {
  it('names the code and message, and copes with null, strings and long messages', () => {
    assert.equal(logReason({ code: '23505', message: 'duplicate key' }), '23505: duplicate key');
    assert.equal(logReason(null), 'object: null');
    assert.equal(logReason('boom'), 'string: boom');
    assert.equal(logReason(new Error('x'.repeat(1000))).length, 500);
  });
});

describe('sqlState and isConcurrencyConflict', () => {
  it('takes only five-character SQLSTATEs', () => {
    assert.equal(sqlState(pgError('23505')), '23505');
    assert.equal(sqlState({ code: 'ECONNRESET' }), null);
    assert.equal(sqlState({ code: 23505 }), null);
  });

  it('knows serialization failures, deadlocks, lock timeouts, cancelled statements and limits of the server', () => {
    for (const code of ['40001', '40P01', '55P03', '57014', '53200', '53400'])
      assert.equal(isConcurrencyConflict(pgError(code)), true, code);
    for (const code of ['23505', '08006', '22P02', '53300', '53100'])
      assert.equal(isConcurrencyConflict(pgError(code)), false, code);
  });

  it('gives PostgreSQL the SQLSTATEs that fail a chunk as a whole, connection losses and conflicts alike', () => {
    const failsChunk = new RegExp(CHUNK_FAILURE_SQLSTATE);
    for (const code of ['40001', '40P01', '55P03', '57014', '53200', '53400', '08006', '57P01', '53300'])
      assert.match(code, failsChunk);
    for (const code of ['23505', '22P02', '42703', 'P0001']) assert.doesNotMatch(code, failsChunk);
  });
});
