/**
 * FrameReader: messages split across chunks at any point come out whole and in order;
 * reassembly of a big message is linear in its size; messages over the limit are refused
 * (54000) from their header, before their body is buffered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FrameReader } from '../../src/wire/frame-reader.js';
import { PgError } from '../../src/wire/pg-error.js';

function msg(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeUInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function readAll(r: FrameReader, out: Buffer[]): void {
  while (r.next()) out.push(Buffer.from(r.message()));
}

test('messages split at every possible point, and in random chunks, come out whole and in order', () => {
  const msgs = [msg('Q', Buffer.from('SELECT 1\0')), msg('S', Buffer.alloc(0)), msg('P', randomBytes(3000)), msg('B', randomBytes(7)), msg('E', randomBytes(70_000))];
  const stream = Buffer.concat(msgs);
  for (let cut = 1; cut < 3100; cut += 7) {
    const r = new FrameReader();
    const got: Buffer[] = [];
    r.push(stream.subarray(0, cut));
    readAll(r, got);
    r.push(stream.subarray(cut));
    readAll(r, got);
    assert.deepEqual(got, msgs, `cut at ${cut}`);
    assert.equal(r.pending, 0);
  }
  for (let round = 0; round < 200; round++) {
    const r = new FrameReader();
    const got: Buffer[] = [];
    for (let i = 0; i < stream.length; ) {
      const n = 1 + Math.floor(Math.random() * (round % 2 ? 9 : 20_000));
      r.push(stream.subarray(i, i + n));
      i += n;
      // Sometimes the reader is not drained between chunks (a paused client loop).
      if (Math.random() < 0.7) readAll(r, got);
    }
    readAll(r, got);
    assert.deepEqual(got, msgs, `round ${round}`);
  }
});

test('drain returns every unread byte, including a message still being assembled', () => {
  const a = msg('Q', Buffer.from('SELECT 1\0'));
  const big = msg('Q', randomBytes(100_000));
  const r = new FrameReader();
  r.push(Buffer.concat([a, big.subarray(0, 1000)]));
  assert.ok(r.next());
  r.push(big.subarray(1000, 5000));
  assert.equal(r.next(), false);
  assert.equal(r.pending, 5000);
  assert.deepEqual(r.drain(), big.subarray(0, 5000));
});

test('a 32 MB message arriving in 16 kB chunks is reassembled in linear time', () => {
  const body = randomBytes(32 << 20);
  const m = msg('Q', body);
  const r = new FrameReader();
  const t0 = performance.now();
  let done = false;
  for (let i = 0; i < m.length; i += 16 << 10) {
    r.push(m.subarray(i, i + (16 << 10)));
    if (r.next()) done = true;
  }
  const ms = performance.now() - t0;
  assert.ok(done);
  assert.ok(r.body().equals(body));
  // Copying the pending bytes again per chunk would move 2048 × 16 MB = 32 GB (many seconds).
  assert.ok(ms < 1500, `reassembly took ${ms.toFixed(0)} ms`);
});

test('a message longer than the limit is refused with 54000 from its header alone', () => {
  const r = new FrameReader(1 << 20);
  const head = Buffer.alloc(5);
  head[0] = 0x51;
  head.writeUInt32BE((1 << 20) + 1, 1);
  r.push(head);
  assert.throws(
    () => r.next(),
    (e: unknown) => e instanceof PgError && e.code === '54000' && /larger than max_packet_size \(1048576 bytes\)/.test(e.message),
  );
  // At the limit it is accepted; a length below 4 or above 1 GiB is a protocol violation.
  const ok = new FrameReader(1 << 20);
  ok.push(msg('Q', Buffer.alloc((1 << 20) - 4)));
  assert.ok(ok.next());
  const bad = new FrameReader();
  bad.push(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]));
  assert.throws(() => bad.next(), (e: unknown) => e instanceof PgError && e.code === '08P01');
});

test('push never throws for a bad length that arrives behind buffered bytes: next() reports it, inside the caller\'s message loop', () => {
  for (const len of [3, 0x7fffffff, (1 << 20) + 1]) {
    const r = new FrameReader(1 << 20);
    // Three bytes of a header first, then the rest of a header with a bad length, then more.
    const head = Buffer.alloc(5);
    head[0] = 0x51;
    head.writeUInt32BE(len, 1);
    r.push(head.subarray(0, 3));
    assert.doesNotThrow(() => r.push(Buffer.concat([head.subarray(3), Buffer.alloc(100)])));
    assert.doesNotThrow(() => r.push(Buffer.alloc(10)));
    assert.throws(() => r.next(), (e: unknown) => e instanceof PgError && (e.code === '08P01' || e.code === '54000'), `length ${len}`);
  }
});
