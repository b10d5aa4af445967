// ByteReader: the one bounded reader of protocol bytes (v3 bodies and pgoutput): reads past the
// end fail with 08P01 naming what was read and the offset; one reader is reused across messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader } from '../../src/wire/byte-reader.js';
import { decodeBind, decodeRowDescription } from '../../src/wire/decode.js';
import { PgError } from '../../src/wire/pg-error.js';

test('a read past the end fails with 08P01 naming the message, the field and the offset', () => {
  const r = new ByteReader(Buffer.from([0, 1, 0x61, 0]), 'Test message');
  assert.equal(r.i16(), 1);
  assert.equal(r.cstr(), 'a');
  assert.throws(
    () => r.i32('the count'),
    (e: unknown) => e instanceof PgError && e.code === '08P01' && e.message === 'malformed Test message at offset 4 of 4: truncated: the count needs 4 bytes, 0 left',
  );
  r.reset(Buffer.from('ab'), 'Other message');
  assert.throws(() => r.cstr('the name'), /malformed Other message at offset 0 of 2: unterminated string for the name/);
  assert.throws(() => r.reset(Buffer.from([0, 0, 0, 1]), 'Length').view(-1), /offset 0 of 4/, 'a negative length is refused, not read backwards');
});

test('reset reuses one reader: views point into the new buffer, expectEnd sees trailing bytes', () => {
  const r = new ByteReader();
  r.reset(Buffer.from([9, 8, 7]), 'first', 1);
  assert.deepEqual([...r.view(2)], [8, 7]);
  r.reset(Buffer.from([1, 2, 3]), 'second');
  assert.equal(r.u8(), 1);
  assert.throws(() => r.expectEnd(), /malformed second at offset 1 of 3: 2 unexpected trailing bytes/);
  assert.deepEqual([...r.rest()], [2, 3]);
  r.expectEnd();
});

test('truncated protocol messages name their type and offset (decode.ts reads with the same reader)', () => {
  // Bind: portal "", statement "s", a count of 1 format code, then the body ends before it.
  const bind = Buffer.from([0, 0x73, 0, 0, 1]);
  assert.throws(() => decodeBind(bind), /malformed Bind message at offset 5 of 5: truncated: an int16 needs 2 bytes/);
  assert.throws(() => decodeRowDescription(Buffer.from([0, 1, 0x61])), /malformed RowDescription message at offset 2 of 3: unterminated string/);
});
