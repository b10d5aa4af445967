/**
 * Hostile and broken clients over raw sockets: garbage, truncated and oversized messages, odd
 * startup codes, clients that vanish mid-message. After each, the proxy still serves a normal
 * client and the clients already connected (one of them inside a transaction) are undisturbed.
 * Also TLS: SSLRequest is answered 'N' without a certificate and 'S' (psql sslmode=require) with one.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pgLib from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, run, runPsql, type ProxyFixture } from '../harness/proxy.js';
import { RawConn, errorFields, frame, startupPacket } from './raw.js';
import * as fe from '../../src/wire/frontend-messages.js';
import { SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE } from '../../src/wire/protocol.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let pg: PgCluster;
let px: ProxyFixture;
let bystander: pgLib.Client; // idle between statements, with a session setting
let inTx: pgLib.Client; // holds a transaction open for the whole file
let txRows = 0;

before(async () => {
  pg = await PgCluster.start();
  px = await startProxy(pg, { general: 'default_pool_size = 4' });
  await pg.query('CREATE TABLE bystander (n int)');
  await pg.query('CREATE TABLE copy_target (n int, s text)');
  bystander = await px.client();
  await bystander.query("SET application_name = 'bystander'");
  inTx = await px.client();
  await inTx.query('BEGIN');
});
after(async () => {
  await px?.stop();
  await pg?.stop();
});

/** The proxy serves a fresh client and the connected clients are undisturbed. */
async function everyoneElseIsFine(): Promise<void> {
  const fresh = await px.client();
  assert.equal((await fresh.query('SELECT $1::int + 1 AS v', [41])).rows[0].v, 42);
  await fresh.end();
  const r = await bystander.query("SELECT current_setting('application_name') AS app, 1 AS one");
  assert.deepEqual(r.rows[0], { app: 'bystander', one: 1 });
  await inTx.query('INSERT INTO bystander VALUES ($1)', [++txRows]);
  assert.equal((await inTx.query('SELECT count(*)::int AS n FROM bystander')).rows[0].n, txRows);
}

/** Expects a FATAL ErrorResponse with `code` (when given) and then the connection to close. */
async function expectFatalAndClose(c: RawConn, code?: string | RegExp): Promise<Record<string, string>> {
  const m = await c.next(5000);
  assert.equal(m.type, 'E', `expected an ErrorResponse, got '${m.type}'`);
  const f = errorFields(m);
  assert.equal(f.S, 'FATAL');
  if (typeof code === 'string') assert.equal(f.C, code);
  else if (code) assert.match(f.C, code);
  assert.ok(await c.closesWithin(3000), 'the proxy closes the connection');
  return f;
}

describe('before login', () => {
  test('random bytes instead of a startup packet: the connection is closed, nothing else is affected', async () => {
    for (let i = 0; i < 20; i++) {
      const c = await RawConn.connect(px.port);
      c.write(randomBytes(64 + i * 50));
      assert.ok(await c.closesWithin(3000), 'garbage connection closed');
    }
    await everyoneElseIsFine();
  });

  test('an oversized startup length is refused with 08P01', async () => {
    const c = await RawConn.connect(px.port);
    const b = Buffer.alloc(8);
    b.writeUInt32BE(0x7fffffff, 0);
    b.writeInt32BE(196608, 4);
    c.write(b);
    const f = await expectFatalAndClose(c, '08P01');
    assert.match(f.M, /invalid startup packet length/);
    const tiny = await RawConn.connect(px.port);
    tiny.write(Buffer.from([0, 0, 0, 3, 0, 0, 0, 0]));
    await expectFatalAndClose(tiny, '08P01');
    await everyoneElseIsFine();
  });

  test('a truncated startup packet times out after connect_timeout; one cut off by disconnect is dropped', async () => {
    // Its own proxy: a short connect_timeout would make the shared one flaky on a loaded machine.
    const quick = await startProxy(pg, { general: 'connect_timeout = 500' });
    try {
      const c = await RawConn.connect(quick.port);
      c.write(fe.startupMessage({ user: 'app', database: 'app' }).subarray(0, 12));
      const f = await expectFatalAndClose(c, '08P01');
      assert.match(f.M, /did not complete startup within 500 ms/);
    } finally {
      await quick.stop();
    }
    const gone = await RawConn.connect(px.port);
    gone.write(fe.startupMessage({ user: 'app', database: 'app' }).subarray(0, 12));
    gone.destroy();
    await everyoneElseIsFine();
  });

  test('invalid startup packets: unsupported protocol, no user, unterminated parameters', async () => {
    const v2 = await RawConn.connect(px.port);
    v2.write(startupPacket(2 << 16, Buffer.from('user\0app\0\0')));
    const f = await expectFatalAndClose(v2, '0A000');
    assert.match(f.M, /protocol 2\.0/);

    const noUser = await RawConn.connect(px.port);
    noUser.write(startupPacket(196608, Buffer.from('database\0app\0\0')));
    assert.match((await expectFatalAndClose(noUser, '28000')).M, /no PostgreSQL user name/);

    const unterminated = await RawConn.connect(px.port);
    unterminated.write(startupPacket(196608, Buffer.from('user\0ap')));
    await expectFatalAndClose(unterminated);

    const shortCancel = await RawConn.connect(px.port);
    shortCancel.write(startupPacket(CANCEL_REQUEST_CODE));
    assert.ok(await shortCancel.closesWithin(2000));
    await everyoneElseIsFine();
  });

  test('SSLRequest without TLS configured is answered N and the login continues in plain text', async () => {
    const c = await RawConn.connect(px.port);
    c.write(startupPacket(SSL_REQUEST_CODE));
    assert.equal((await c.bytes(1)).toString(), 'N');
    await c.login('app', 'secret', 'app');
    c.write(fe.query('SELECT 1'));
    const msgs = await c.until('Z');
    assert.deepEqual(msgs.map((m) => m.type), ['T', 'D', 'C', 'Z']);
    c.destroy();
  });

  test('GSSENCRequest is answered N and the login continues', async () => {
    const c = await RawConn.connect(px.port);
    c.write(startupPacket(GSSENC_REQUEST_CODE));
    assert.equal((await c.bytes(1)).toString(), 'N');
    c.write(startupPacket(SSL_REQUEST_CODE));
    assert.equal((await c.bytes(1)).toString(), 'N');
    await c.login('app', 'secret', 'app');
    c.destroy();
    await everyoneElseIsFine();
  });

  test('a CancelRequest with an unknown key cancels nothing and closes', async () => {
    const slow = await px.client();
    const q = slow.query('SELECT pg_sleep(0.5), 1 AS v');
    await sleep(100);
    const c = await RawConn.connect(px.port);
    c.write(fe.cancelRequest(12345, 67890));
    assert.ok(await c.closesWithin(2000));
    assert.equal((await q).rows[0].v, 1, 'the running query was not cancelled');
    await slow.end();
  });

  test('clients that disconnect during authentication (SCRAM and md5) leave no trace', async () => {
    for (let i = 0; i < 5; i++) {
      const c = await RawConn.connect(px.port);
      c.write(fe.startupMessage({ user: 'app', database: 'app' }));
      const m = await c.next();
      assert.equal(m.type, 'R');
      // Half a SASLInitialResponse, then gone.
      c.write(fe.saslInitialResponse('SCRAM-SHA-256', 'n,,n=app,r=abcdef').subarray(0, 10));
      c.destroy();
    }
    const bad = await RawConn.connect(px.port);
    bad.write(fe.startupMessage({ user: 'app', database: 'app' }));
    await bad.next();
    bad.write(frame('p', Buffer.from('not scram at all')));
    await expectFatalAndClose(bad);
    const wrongType = await RawConn.connect(px.port);
    wrongType.write(fe.startupMessage({ user: 'app', database: 'app' }));
    await wrongType.next();
    wrongType.write(fe.query('SELECT 1'));
    assert.match((await expectFatalAndClose(wrongType, '08P01')).M, /expected SASLInitialResponse/);
    await everyoneElseIsFine();
    assert.equal(px.proxy.clients().length, 2, 'only the two long-lived clients are registered');
  });
});

describe('after login', () => {
  test('an unknown message type is a FATAL protocol violation for that client only', async () => {
    const c = await RawConn.connect(px.port);
    await c.login('app', 'secret', 'app');
    c.write(frame('Z', Buffer.from('I')));
    const f = await expectFatalAndClose(c, '08P01');
    assert.match(f.M, /invalid frontend message type/);
    await everyoneElseIsFine();
  });

  test('an oversized message length is a FATAL protocol violation', async () => {
    const c = await RawConn.connect(px.port);
    await c.login('app', 'secret', 'app');
    const b = Buffer.alloc(5);
    b[0] = 0x51;
    b.writeUInt32BE(0xfffffff0, 1);
    c.write(b);
    const f = await expectFatalAndClose(c, '08P01');
    assert.match(f.M, /invalid message length/);
    const tiny = await RawConn.connect(px.port);
    await tiny.login('app', 'secret', 'app');
    tiny.write(Buffer.from([0x51, 0, 0, 0, 2]));
    await expectFatalAndClose(tiny, '08P01');
    await everyoneElseIsFine();
  });

  test('random bytes after login: the client is dropped, the pool is not poisoned', async () => {
    for (let i = 0; i < 20; i++) {
      const c = await RawConn.connect(px.port);
      await c.login('app', 'secret', 'app');
      // A plausible first message then noise, like a confused client.
      c.write(Buffer.concat([fe.query('SELECT 1'), randomBytes(200)]));
      await sleep(10);
      c.destroy();
    }
    await sleep(100);
    await everyoneElseIsFine();
    // Every pooled server is back in a clean state: run enough queries to touch each of them.
    const cs = await Promise.all([0, 1, 2, 3].map(() => px.client()));
    await Promise.all(cs.map(async (x) => assert.equal((await x.query('SELECT 1 AS v')).rows[0].v, 1)));
    await Promise.all(cs.map((x) => x.end()));
  });

  test('malformed extended-protocol messages (bad Parse/Bind bodies) are errors, not crashes', async () => {
    const c = await RawConn.connect(px.port);
    await c.login('app', 'secret', 'app');
    c.write(Buffer.concat([frame('P', Buffer.from('named_without_terminator')), fe.sync()]));
    await expectFatalAndClose(c);
    const d = await RawConn.connect(px.port);
    await d.login('app', 'secret', 'app');
    c.destroy();
    // A Bind for a named statement whose body ends early.
    d.write(Buffer.concat([fe.parse('s1', 'SELECT $1::int', [23]), frame('B', Buffer.from([0, 0x73, 0x31, 0, 0, 5])), fe.sync()]));
    const msgs: string[] = [];
    for (;;) {
      try {
        const m = await d.next(3000);
        msgs.push(m.type);
        if (m.type === 'Z') break;
      } catch {
        msgs.push('closed');
        break;
      }
    }
    assert.ok(msgs.includes('E'), `an error was reported: ${msgs.join(',')}`);
    d.destroy();
    await everyoneElseIsFine();
  });

  test('a client that disconnects mid-message, mid-query and mid-COPY does not disturb others', async () => {
    // Mid-message: half a Query.
    const a = await RawConn.connect(px.port);
    await a.login('app', 'secret', 'app');
    a.write(fe.query('SELECT 1').subarray(0, 7));
    await sleep(20);
    a.destroy();

    // Mid-query: a long query running on a server.
    const b = await RawConn.connect(px.port);
    await b.login('app', 'secret', 'app');
    b.write(fe.query('SELECT pg_sleep(1)'));
    await sleep(150);
    b.destroy();

    // Mid-transaction with a half-sent pipeline.
    const t = await RawConn.connect(px.port);
    await t.login('app', 'secret', 'app');
    t.write(fe.query('BEGIN; INSERT INTO bystander VALUES (-1)'));
    await t.until('Z');
    t.write(Buffer.concat([fe.parse('', 'INSERT INTO bystander VALUES (-2)'), fe.bind('', '', [], []).subarray(0, 6)]));
    await sleep(20);
    t.destroy();

    // Mid-COPY FROM STDIN.
    const c = await RawConn.connect(px.port);
    await c.login('app', 'secret', 'app');
    c.write(fe.query('COPY copy_target FROM STDIN'));
    const g = await c.next();
    assert.equal(g.type, 'G', 'CopyInResponse');
    c.write(fe.copyData(Buffer.from('1\tone\n2\ttwo\n')));
    c.write(fe.copyData(Buffer.from('3\tth')).subarray(0, 8));
    await sleep(20);
    c.destroy();

    // Mid-COPY TO STDOUT of a big result.
    const o = await RawConn.connect(px.port);
    await o.login('app', 'secret', 'app');
    o.write(fe.query('COPY (SELECT g, repeat(\'x\', 100) FROM generate_series(1, 200000) g) TO STDOUT'));
    assert.equal((await o.next()).type, 'H', 'CopyOutResponse');
    o.destroy();

    await sleep(300);
    await everyoneElseIsFine();
    // Nothing of the abandoned transaction or COPY was committed.
    const [row] = await pg.query<{ neg: string; copied: string }>('SELECT (SELECT count(*) FROM bystander WHERE n < 0) AS neg, (SELECT count(*) FROM copy_target) AS copied');
    assert.deepEqual(row, { neg: '0', copied: '0' });
    // And the abandoned long query was stopped or finished; no server is left running it for a client.
    const stuck = await pg.query("SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1)%' AND state = 'active'");
    assert.equal(stuck.length, 0);
  });

  test('many clients sending garbage concurrently while a normal client runs queries', async () => {
    const worker = await px.client();
    let stop = false;
    let ok = 0;
    const loop = (async () => {
      while (!stop) {
        assert.equal((await worker.query('SELECT $1::int AS v', [ok])).rows[0].v, ok);
        ok++;
      }
    })();
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const c = await RawConn.connect(px.port);
        if (i % 2) await c.login('app', 'secret', 'app');
        c.write(randomBytes(1000));
        await sleep(20);
        c.destroy();
      }),
    );
    stop = true;
    await loop;
    assert.ok(ok > 0);
    await worker.end();
    await everyoneElseIsFine();
  });

  test('malformed admin commands get errors and the admin session keeps working', async () => {
    const admin = await RawConn.connect(px.port);
    await admin.login('admin', 'adminpw', 'admin');
    for (const sql of ['SHOW', 'SHOW NOTHING', 'PAUSE a b c d', 'MAINTENANCE SIDEWAYS', '"unterminated', "SET x TO 'y", 'x'.repeat(100_000)]) {
      admin.write(fe.query(sql));
      const msgs = await admin.until('Z');
      assert.ok(msgs.some((m) => m.type === 'E'), `error for ${JSON.stringify(sql.slice(0, 30))}`);
    }
    admin.write(fe.query('SHOW VERSION'));
    const ok = await admin.until('Z');
    assert.deepEqual(ok.map((m) => m.type), ['T', 'D', 'C', 'Z']);
    // Garbage frames on the admin connection end that session only.
    admin.write(Buffer.concat([Buffer.from([0x51, 0xff, 0xff, 0xff, 0xff]), randomBytes(300)]));
    assert.equal((await admin.next()).type, 'E', 'a FATAL error for the bad frame');
    assert.ok(await admin.closesWithin(3000), 'the admin session is closed');
    assert.equal((await px.admin('SHOW VERSION')).length, 1);
    await everyoneElseIsFine();
  });
});

describe('TLS', () => {
  let dir: string;
  let tlsPx: ProxyFixture;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pgshift-tls-'));
    const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')]);
    assert.equal(r.code, 0, r.stderr);
    tlsPx = await startProxy(pg, { general: `tls_certificate = "${join(dir, 'c.pem')}"\ntls_private_key = "${join(dir, 'k.pem')}"` });
  });
  after(async () => {
    await tlsPx?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('psql with sslmode=require connects over TLS and runs queries', async () => {
    const url = tlsPx.url().replace('sslmode=disable', 'sslmode=require');
    const r = await run('psql', [url, '-X', '-c', '\\conninfo', '-c', 'SELECT 6 * 7 AS v']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
    assert.match(r.stdout, /42/);
    // Without TLS on the same proxy still works; wrong password over TLS still fails cleanly.
    assert.deepEqual(await runPsql(tlsPx.url(), 'SELECT 1 AS v'), [{ v: '1' }]);
    await assert.rejects(runPsql(url.replace(':secret@', ':bad@'), 'SELECT 1'), /password authentication failed/);
  });

  test('SSLRequest is answered S when TLS is configured; plaintext bytes piggybacked after it are refused', async () => {
    const c = await RawConn.connect(tlsPx.port);
    c.write(startupPacket(SSL_REQUEST_CODE));
    assert.equal((await c.bytes(1)).toString(), 'S');
    c.destroy();
    const sneaky = await RawConn.connect(tlsPx.port);
    sneaky.write(Buffer.concat([startupPacket(SSL_REQUEST_CODE), fe.startupMessage({ user: 'app', database: 'app' })]));
    const f = await expectFatalAndClose(sneaky, '08P01');
    assert.match(f.M, /unencrypted data after SSL request/);
    // A TLS handshake with garbage does not hurt the proxy.
    const junk = await RawConn.connect(tlsPx.port);
    junk.write(startupPacket(SSL_REQUEST_CODE));
    await junk.bytes(1);
    // The first byte is no TLS record type (20–23): with one, random length bytes could make the
    // TLS layer wait for a record of up to 64 kB until the login deadline (a 1-in-64 flake).
    const garbage = randomBytes(500);
    garbage[0] = 0x47;
    junk.write(garbage);
    assert.ok(await junk.closesWithin(3000));
    assert.deepEqual(await runPsql(tlsPx.url().replace('sslmode=disable', 'sslmode=require'), 'SELECT 2 AS v'), [{ v: '2' }]);
  });
});

test('the long-lived transaction commits at the end with every row it wrote', async () => {
  await inTx.query('COMMIT');
  const [row] = await pg.query<{ n: string }>('SELECT count(*) AS n FROM bystander WHERE n > 0');
  assert.equal(Number(row.n), txRows);
  assert.ok(txRows >= 10);
  await bystander.end();
  await inTx.end();
  await sleep(100);
  assert.equal(px.proxy.gate.openTransactions('app'), 0, 'no transaction is counted open once every client is idle or gone');
  assert.equal(px.proxy.clients().length, 0, 'every client is unregistered');
  const pools = await px.admin('SHOW POOLS');
  assert.equal(pools[0].sv_active, '0', 'no server connection is still checked out');
});
