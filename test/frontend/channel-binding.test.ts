/**
 * SCRAM-SHA-256-PLUS (tls-server-end-point channel binding) for clients on TLS to pgshift, with
 * real clients: node-postgres (enableChannelBinding) and psql (channel_binding=require). Over
 * plain TCP only SCRAM-SHA-256 is offered, and TLS cannot be nested inside TLS.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, run, type ProxyFixture } from '../harness/proxy.js';
import { RawConn, startupPacket } from './raw.js';
import { SSL_REQUEST_CODE } from '../../src/wire/protocol.js';
import * as fe from '../../src/wire/frontend-messages.js';

let cluster: PgCluster;
let dir: string;
/** Two proxies: an ECDSA (SHA-256) certificate and an RSA certificate signed with SHA-384. */
let ecPx: ProxyFixture;
let rsaPx: ProxyFixture;

async function cert(name: string, args: string[]): Promise<string> {
  const r = await run('openssl', ['req', '-x509', ...args, '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`)]);
  assert.equal(r.code, 0, r.stderr);
  return `tls_certificate = "${join(dir, `${name}.pem`)}"\ntls_private_key = "${join(dir, `${name}.key`)}"`;
}

before(async () => {
  cluster = await PgCluster.start();
  dir = mkdtempSync(join(tmpdir(), 'pgshift-cb-'));
  ecPx = await startProxy(cluster, { general: await cert('ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-sha256']) });
  rsaPx = await startProxy(cluster, { general: await cert('rsa', ['-newkey', 'rsa:2048', '-sha384']) });
});
after(async () => {
  await ecPx?.stop();
  await rsaPx?.stop();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The SASL mechanisms pgshift offers on a raw connection (optionally after TLS). */
async function offered(port: number, useTls: boolean): Promise<string[]> {
  const c = await RawConn.connect(port);
  let sock: import('node:net').Socket = c.socket;
  if (useTls) {
    c.write(startupPacket(SSL_REQUEST_CODE));
    assert.equal((await c.bytes(1)).toString(), 'S');
    c.socket.removeAllListeners('data');
    sock = tls.connect({ socket: c.socket, rejectUnauthorized: false });
    await new Promise((r) => sock.once('secureConnect', r));
  }
  const got = new Promise<Buffer>((resolve) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 5 && buf.length >= 1 + buf.readUInt32BE(1)) resolve(buf.subarray(0, 1 + buf.readUInt32BE(1)));
    });
  });
  sock.write(fe.startupMessage({ user: 'app', database: 'app' }));
  const m = await got;
  sock.destroy();
  assert.equal(String.fromCharCode(m[0]), 'R');
  assert.equal(m.readUInt32BE(5), 10, 'AuthenticationSASL');
  return m.subarray(9).toString().split('\0').filter(Boolean);
}

test('SCRAM-SHA-256-PLUS is offered first over TLS and never over plain TCP', async () => {
  assert.deepEqual(await offered(ecPx.port, true), ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
  assert.deepEqual(await offered(ecPx.port, false), ['SCRAM-SHA-256']);
});

for (const [name, px] of [['an ECDSA/SHA-256', () => ecPx], ['an RSA/SHA-384', () => rsaPx]] as const) {
  test(`node-postgres with enableChannelBinding logs in with SCRAM-SHA-256-PLUS over TLS (${name} certificate)`, async () => {
    const c = new pg.Client({ host: '127.0.0.1', port: px().port, user: 'app', password: 'secret', database: 'app', ssl: { rejectUnauthorized: false }, enableChannelBinding: true });
    // Record the mechanism node-postgres picks from pgshift's offer.
    const conn = (c as unknown as { connection: { sendSASLInitialResponseMessage(m: string, r: string): void } }).connection;
    const send = conn.sendSASLInitialResponseMessage.bind(conn);
    const chosen: string[] = [];
    conn.sendSASLInitialResponseMessage = (m, r) => {
      chosen.push(m);
      send(m, r);
    };
    await c.connect();
    assert.deepEqual(chosen, ['SCRAM-SHA-256-PLUS']);
    assert.deepEqual((await c.query('SELECT 6 * 7 AS v')).rows, [{ v: 42 }]);
    await c.end();
    // A wrong password still fails with 28P01 on the PLUS path.
    const bad = new pg.Client({ host: '127.0.0.1', port: px().port, user: 'app', password: 'wrong', database: 'app', ssl: { rejectUnauthorized: false }, enableChannelBinding: true });
    await assert.rejects(bad.connect(), (e: Error & { code?: string }) => e.code === '28P01');
  });

  test(`psql with channel_binding=require connects over TLS (${name} certificate) and is refused without TLS`, async () => {
    const url = px().url().replace('sslmode=disable', 'sslmode=require&channel_binding=require');
    const r = await run('psql', [url, '-X', '-At', '-c', 'SELECT 6 * 7']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '42');
    const plain = await run('psql', [px().url().replace('sslmode=disable', 'sslmode=disable&channel_binding=require'), '-X', '-At', '-c', 'SELECT 1']);
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /channel binding required/);
  });
}

test('TLS cannot be nested: an SSLRequest inside the TLS session is a FATAL protocol violation', async () => {
  const c = await RawConn.connect(ecPx.port);
  c.write(startupPacket(SSL_REQUEST_CODE));
  assert.equal((await c.bytes(1)).toString(), 'S');
  c.socket.removeAllListeners('data');
  const sock = tls.connect({ socket: c.socket, rejectUnauthorized: false });
  await new Promise((r) => sock.once('secureConnect', r));
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  sock.write(startupPacket(SSL_REQUEST_CODE));
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not closed within 3 s')), 3000).unref())]);
  const reply = Buffer.concat(chunks);
  assert.equal(String.fromCharCode(reply[0]), 'E', 'an error, not a second "S"');
  assert.match(reply.toString('latin1'), /08P01[\s\S]*SSLRequest sent twice/);
});
