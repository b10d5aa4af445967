/**
 * Limits that hold against hostile or careless clients: the largest message (max_packet_size),
 * big messages reassembled without stalling other clients, a fixed login deadline, one
 * SSL/GSSENC negotiation per connection, the client connection limit (max_client_conn),
 * back-pressure, idle timeouts, and BackendKeyData that cannot be guessed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import net from 'node:net';
import pino from 'pino';
import { RawConn, errorFields, assertEndsWithFatal, assertIdleClientClosed, startupPacket } from './raw.js';
import * as fe from '../../src/wire/frontend-messages.js';
import { SSL_REQUEST_CODE, GSSENC_REQUEST_CODE } from '../../src/wire/protocol.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let pg: PgCluster;
let px: ProxyFixture;

before(async () => {
  pg = await PgCluster.start();
  px = await startProxy(pg, { general: 'max_packet_size = 1048576' });
});
after(async () => {
  await px?.stop();
  await pg?.stop();
});

test('a message over max_packet_size ends that client with FATAL 54000; other clients are unaffected', async () => {
  const other = await px.client();
  await other.query('BEGIN');
  const c = await RawConn.connect(px.port);
  await c.login('app', 'secret', 'app');
  // Only the header and a little of the body: the refusal must not wait for the rest.
  c.write(fe.query(`SELECT '${'x'.repeat(2 << 20)}'`).subarray(0, 64 << 10));
  const m = await c.next(5000);
  assert.equal(m.type, 'E');
  const f = errorFields(m);
  assert.equal(f.S, 'FATAL');
  assert.equal(f.C, '54000');
  assert.match(f.M, /larger than max_packet_size \(1048576 bytes\)/);
  assert.ok(await c.closesWithin(3000));
  // Just under the limit is fine; the other client's transaction went on.
  const ok = await px.client();
  const big = 'y'.repeat(1_000_000);
  assert.equal((await ok.query('SELECT length($1::text) AS n', [big])).rows[0].n, 1_000_000);
  assert.equal((await other.query('SELECT 1 AS v')).rows[0].v, 1);
  await other.query('COMMIT');
  await ok.end();
  await other.end();
});

test('a 30 MB query does not stall a small client running alongside it', async () => {
  const roomy = await startProxy(pg);
  try {
    const bigClient = await roomy.client();
    const small = await roomy.client();
    const text = 'z'.repeat(30 << 20);
    let worst = 0;
    let stop = false;
    const pings = (async () => {
      while (!stop) {
        const t0 = performance.now();
        await small.query('SELECT 1');
        worst = Math.max(worst, performance.now() - t0);
      }
    })();
    const t0 = performance.now();
    const r = await bigClient.query('SELECT length($1::text) AS n', [text]);
    const ms = performance.now() - t0;
    stop = true;
    await pings;
    assert.equal(r.rows[0].n, 30 << 20);
    // Quadratic reassembly took over 8 s for this and stalled the small client for seconds.
    assert.ok(ms < 4000, `the 30 MB query took ${ms.toFixed(0)} ms`);
    assert.ok(worst < 1000, `a small query waited ${worst.toFixed(0)} ms`);
  } finally {
    await roomy.stop();
  }
});

test('the login deadline is fixed: repeated SSLRequest/GSSENCRequest neither extend it nor are accepted twice', async () => {
  const quick = await startProxy(pg, { general: 'client_login_timeout = 800' });
  try {
    // GSSENC then SSL (as libpq may do) is fine; a second GSSENCRequest is a protocol violation.
    const twice = await RawConn.connect(quick.port);
    twice.write(startupPacket(GSSENC_REQUEST_CODE));
    assert.equal((await twice.bytes(1)).toString(), 'N');
    twice.write(startupPacket(SSL_REQUEST_CODE));
    assert.equal((await twice.bytes(1)).toString(), 'N');
    twice.write(startupPacket(GSSENC_REQUEST_CODE));
    const f = errorFields(await twice.next());
    assert.equal(f.C, '08P01');
    assert.match(f.M, /GSSENCRequest sent twice/);
    assert.ok(await twice.closesWithin(2000));

    // A client that trickles negotiations (one every 300 ms) is closed at the deadline.
    const slow = await RawConn.connect(quick.port);
    const t0 = Date.now();
    slow.write(startupPacket(GSSENC_REQUEST_CODE));
    await slow.bytes(1);
    await sleep(300);
    slow.write(startupPacket(SSL_REQUEST_CODE));
    await slow.bytes(1);
    await sleep(300);
    slow.write(fe.startupMessage({ user: 'app', database: 'app' }).subarray(0, 10));
    const g = errorFields(await slow.next(3000));
    assert.equal(g.C, '08P01');
    assert.match(g.M, /did not complete startup within 800 ms/);
    assert.ok(Date.now() - t0 < 1500, `closed after ${Date.now() - t0} ms`);
    assert.ok(await slow.closesWithin(2000));
  } finally {
    await quick.stop();
  }
});

test('max_client_conn: a client over the limit gets 53300 and is closed; a warning is logged; a slot frees on disconnect', async () => {
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
  const small = await startProxy(pg, { general: 'max_client_conn = 3', log });
  try {
    const held = [await RawConn.connect(small.port), await RawConn.connect(small.port)];
    const c3 = await small.client();
    for (let i = 0; i < 3; i++) {
      const over = await RawConn.connect(small.port);
      const f = errorFields(await over.next());
      assert.equal(f.S, 'FATAL');
      assert.equal(f.C, '53300');
      assert.match(f.M, /too many clients already \(max_client_conn = 3\)/);
      assert.ok(await over.closesWithin(2000));
    }
    assert.equal(lines.filter((l) => l.includes('max_client_conn reached')).length, 1, 'one warning, rate-limited');
    assert.equal((await c3.query('SELECT 1 AS v')).rows[0].v, 1, 'clients inside the limit are served');
    held[0].destroy();
    await sleep(100);
    const again = await small.client();
    assert.equal((await again.query('SELECT 2 AS v')).rows[0].v, 2);
    held[1].destroy();
  } finally {
    await small.stop();
  }
});

test('a client rejected before login is closed at once, not read for another second while it keeps sending', async () => {
  const s = net.connect({ host: '127.0.0.1', port: px.port, allowHalfOpen: true });
  s.on('error', () => undefined);
  await new Promise((r) => s.once('connect', r));
  const closed = new Promise<number>((r) => s.once('close', () => r(Date.now())));
  s.write(startupPacket(2 << 16, Buffer.from('user\0app\0\0')));
  const t0 = Date.now();
  const junk = Buffer.alloc(64 << 10, 0x41);
  const pump = setInterval(() => s.writable && s.write(junk), 5);
  const at = await Promise.race([closed, sleep(3000).then(() => Infinity)]);
  clearInterval(pump);
  s.destroy();
  assert.ok(at - t0 < 400, `closed after ${at - t0} ms`);
});

test('a client that sends Syncs and never reads stops being read: replies pgshift makes itself respect back-pressure', async () => {
  const c = await RawConn.connect(px.port);
  await c.login('app', 'secret', 'app');
  const s = c.socket;
  s.removeAllListeners('data');
  s.pause();
  const syncs = 5_000_000; // 25 MB sent, 30 MB of ReadyForQuery owed
  const batch = Buffer.concat(Array.from({ length: 100_000 }, () => fe.sync()));
  for (let i = 0; i < syncs / 100_000; i++) s.write(batch);
  await sleep(2000);
  const info = px.proxy.clients().find((x) => x.addr === '127.0.0.1' && x.port === s.localPort);
  assert.ok(info, 'the client is registered');
  // Without back-pressure pgshift read all 25 MB and buffered 30 MB of replies for it.
  assert.ok(info.stats.bytesReceived < 16_000_000, `pgshift read ${info.stats.bytesReceived} bytes from a client that reads nothing`);
  // Once it reads, every reply arrives, in order, and the client still works.
  let got = 0;
  s.on('data', (d: Buffer) => (got += d.length));
  s.resume();
  for (const deadline = Date.now() + 20_000; got < syncs * 6 && Date.now() < deadline; ) await sleep(50);
  assert.equal(got, syncs * 6, 'one ReadyForQuery per Sync');
  s.removeAllListeners('data');
  s.on('data', (d: Buffer) => c.reader.push(d));
  c.destroy();
});

test('client_idle_in_transaction_timeout frees a pool held by idle transactions; client_idle_timeout closes idle clients', async () => {
  const tight = await startProxy(pg, { general: 'default_pool_size = 2\nclient_idle_in_transaction_timeout = 400\nclient_idle_timeout = 1500' });
  try {
    const holders = [await RawConn.connect(tight.port), await RawConn.connect(tight.port)];
    for (const h of holders) {
      await h.login('app', 'secret', 'app');
      h.write(fe.query('BEGIN'));
      await h.until('Z');
    }
    // Both server connections are held by transactions that send nothing more; a third client still gets one.
    const t0 = Date.now();
    const third = await tight.client();
    assert.equal((await third.query('SELECT 3 AS v')).rows[0].v, 3);
    assert.ok(Date.now() - t0 < 2000, `waited ${Date.now() - t0} ms for a server`);
    for (const h of holders) await assertEndsWithFatal(h, '25P03');
    // Active clients are not touched by either timeout.
    for (let i = 0; i < 4; i++) {
      await sleep(500);
      assert.equal((await third.query('SELECT 1 AS v')).rows[0].v, 1);
    }
    await third.end();
    // An idle client (no transaction) is closed after client_idle_timeout, not before.
    await assertIdleClientClosed(tight.port, 1400);
  } finally {
    await tight.stop();
  }
});

test('backend pids and secrets are random and distinct, not sequential', async () => {
  const conns: RawConn[] = [];
  const keys: { pid: number; secret: number }[] = [];
  for (let i = 0; i < 20; i++) {
    const c = await RawConn.connect(px.port);
    const msgs = await c.login('app', 'secret', 'app');
    const k = msgs.find((m) => m.type === 'K');
    assert.ok(k, 'BackendKeyData sent');
    keys.push({ pid: k.body.readInt32BE(0), secret: k.body.readInt32BE(4) });
    conns.push(c);
  }
  const pids = keys.map((k) => k.pid);
  assert.equal(new Set(pids).size, pids.length, 'pids are distinct');
  assert.equal(new Set(keys.map((k) => k.secret)).size, keys.length, 'secrets are distinct');
  const steps = pids.slice(1).map((p, i) => p - pids[i]);
  assert.ok(steps.filter((d) => Math.abs(d) <= 20).length <= 1, `pids follow each other: ${pids.join(',')}`);
  assert.ok(pids.every((p) => p > 0) && keys.every((k) => k.secret > 0));

  // A CancelRequest with a neighbouring pid or secret cancels nothing; the exact pair cancels.
  const target = conns[0];
  const { pid, secret } = keys[0];
  target.write(fe.query('SELECT pg_sleep(3)'));
  await new Promise((r) => setTimeout(r, 200));
  for (const [p, s] of [[pid + 1, secret], [pid, secret + 1]]) {
    const c = await RawConn.connect(px.port);
    c.write(fe.cancelRequest(p, s));
    assert.ok(await c.closesWithin(2000));
  }
  await new Promise((r) => setTimeout(r, 200));
  const c = await RawConn.connect(px.port);
  c.write(fe.cancelRequest(pid, secret));
  const t0 = Date.now();
  const reply = await target.until('Z', 5000);
  assert.ok(Date.now() - t0 < 2000, 'cancelled before pg_sleep ended');
  assert.ok(reply.some((m) => m.type === 'E'), 'the query was cancelled');
  for (const x of conns) x.destroy();
  c.destroy();
});
