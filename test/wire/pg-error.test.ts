import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asPgError, PgError, SQLSTATE } from '../../src/wire/pg-error.js';

test('asPgError turns Node socket errors into connection failures (08006), EPIPE included, and keeps real SQLSTATEs', () => {
  for (const code of ['EPIPE', 'ECONNRESET', 'ECONNREFUSED', 'ERR_STREAM_DESTROYED']) {
    const err = Object.assign(new Error('This socket has been ended by the other party'), { code });
    const e = asPgError(err);
    assert.equal(e.code, SQLSTATE.connectionFailure, code);
    assert.match(e.message, /server connection failed/);
  }
  assert.equal(asPgError(Object.assign(new Error('dup'), { code: '23505' })).code, '23505');
  const pg = new PgError('57P01', 'terminating connection');
  assert.equal(asPgError(pg), pg);
  assert.equal(asPgError(new Error('plain')).code, SQLSTATE.internalError);
});
