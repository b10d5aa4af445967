import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import {
  ScramClient,
  ScramServer,
  scramSecretFromPassword,
  parseScramSecret,
  formatScramSecret,
  mockScramSecret,
  saslInitialResponseData,
  type ScramSecret,
} from '../../src/wire/scram.js';
import { saslprep } from '../../src/wire/saslprep.js';
import * as fe from '../../src/wire/frontend-messages.js';
import { PgError } from '../../src/wire/pg-error.js';
import { tlsServerEndPoint } from '../../src/wire/tls-server-end-point.js';
import { createHash, createHmac, pbkdf2Sync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../harness/proxy.js';
import { rawLogin, startFakeServer, runPsql } from './auth-fixtures.js';

let cluster: PgCluster;
const PW = 'correct horse battery staple';

// Passwords where SASLprep matters: PostgreSQL maps / normalizes some, and falls back to the raw
// bytes for others. The stored secret must match ours byte for byte in every case.
const INTL: Record<string, string> = {
  intl_nfkc: 'ｐäss\u00a0wörd\u00ad', // full-width letters (NFKC), NBSP → space, soft hyphen removed
  intl_combining: 'pa\u0308ss', // a + combining diaeresis composes to ä
  intl_ctrl: 'ｐäss\u0007word', // a control character: prohibited → raw password (not 'päss…')
  intl_bidi: '\u05d0ａ\u05d1', // Hebrew around a Latin letter: bidi rule fails → raw password
  intl_rtl: '\u05d0\u05d1\u05d2', // pure right-to-left: prepared normally
  intl_emoji: 'ｐass😀', // emoji unassigned in Unicode 3.2 → raw password
};

async function rolpassword(user: string): Promise<string> {
  const rows = await cluster.query<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [user]);
  return rows[0].rolpassword;
}

before(async () => {
  cluster = await PgCluster.start();
  await cluster.createUser('scram_user', PW, 'scram-sha-256');
  for (const [u, p] of Object.entries(INTL)) await cluster.createUser(u, p, 'scram-sha-256');
});

after(async () => {
  await cluster?.stop();
});

// ------------------------------------------------------------ client side against PostgreSQL

test('ScramClient logs in to PostgreSQL: SASL exchange, server signature verified, AuthenticationOk then ReadyForQuery', async () => {
  const r = await rawLogin(cluster.port, 'scram_user', { password: PW });
  assert.equal(r.error, undefined);
  assert.deepEqual(r.authCodes, [10, 11, 12, 0]);
  assert.ok(r.types.includes('R'));
  assert.equal(r.types[r.types.length - 1], 'Z');
  assert.ok(r.types.includes('K'), 'BackendKeyData arrives');
});

test('ScramClient with a wrong password gets ErrorResponse 28P01 from PostgreSQL', async () => {
  const r = await rawLogin(cluster.port, 'scram_user', { password: PW + 'x' });
  assert.equal(r.error?.code, '28P01');
  assert.match(r.error!.message, /password authentication failed for user "scram_user"/);
  assert.ok(!r.authCodes.includes(0));
});

test('SASLprep matches PostgreSQL: non-ASCII passwords log in, and derived secrets equal pg_authid byte for byte', async () => {
  for (const [user, password] of Object.entries(INTL)) {
    const stored = parseScramSecret(await rolpassword(user));
    assert.ok(stored, `${user}: rolpassword parses`);
    const ours = scramSecretFromPassword(password, stored.salt, stored.iterations);
    assert.ok(ours.storedKey.equals(stored.storedKey), `${user}: StoredKey matches PostgreSQL`);
    assert.ok(ours.serverKey.equals(stored.serverKey), `${user}: ServerKey matches PostgreSQL`);
    const r = await rawLogin(cluster.port, user, { password });
    assert.equal(r.error, undefined, `${user}: login succeeds`);
    assert.equal(r.types[r.types.length - 1], 'Z');
  }
  // The prepared form of a mapped password is the same password to PostgreSQL.
  const r = await rawLogin(cluster.port, 'intl_nfkc', { password: 'päss wörd' });
  assert.equal(r.error, undefined);
  assert.equal(saslprep(INTL.intl_ctrl), undefined);
  assert.equal(saslprep(INTL.intl_bidi), undefined);
  assert.equal(saslprep(INTL.intl_emoji), undefined);
  assert.equal(saslprep('\u00ad\u200d'), undefined, 'empty after mapping → raw');
  assert.equal(saslprep('abc\u0007'), 'abc\u0007', 'pure ASCII is used unchanged');
});

test('ScramClient rejects a server-first-message whose nonce does not extend its own, and malformed ones, with 08P01', () => {
  const bad = ['r=othernonce,s=QUJD,i=4096', 'garbage', 'r=X', 's=QUJD,r=X,i=1'];
  for (const msg of bad) {
    const c = new ScramClient(PW);
    c.clientFirst();
    assert.throws(() => c.clientFinal(msg), (e: PgError) => e.code === '08P01', msg);
  }
  const c = new ScramClient(PW);
  const nonce = c.clientFirst().split('r=')[1];
  for (const tail of [',s=@@@,i=4096', ',s=QUJD,i=0', ',s=QUJD,i=abc', ',s=QUJD,i=4096,m=ext']) {
    const d = new ScramClient(PW);
    const n2 = d.clientFirst().split('r=')[1];
    assert.throws(() => d.clientFinal(`r=${n2}srv${tail}`), (e: PgError) => e.code === '08P01', tail);
  }
  assert.throws(() => c.clientFinal(`r=${nonce},s=QUJD,i=4096`), (e: PgError) => e.code === '08P01', 'server nonce must be longer');
});

test('ScramClient.verifyServerFinal throws when the server signature is wrong (impostor) and accepts the right one', () => {
  const secret = scramSecretFromPassword(PW);
  const impostor = scramSecretFromPassword('another password', secret.salt, secret.iterations);
  const client = new ScramClient(PW);
  const server = new ScramServer({ ...impostor, storedKey: secret.storedKey });
  const final = client.clientFinal(server.serverFirst(client.clientFirst()));
  const serverFinal = server.serverFinal(final); // proof checks out against StoredKey …
  assert.throws(() => client.verifyServerFinal(serverFinal), (e: PgError) => e.code === '28000' && /server signature/.test(e.message));
  assert.throws(() => client.verifyServerFinal('e=other-error'), PgError);

  const c2 = new ScramClient(PW);
  const s2 = new ScramServer(secret);
  const f2 = s2.serverFinal(c2.clientFinal(s2.serverFirst(c2.clientFirst())));
  assert.doesNotThrow(() => c2.verifyServerFinal(f2));
});

// ------------------------------------------------------------ server side with real clients

test('ScramServer accepts node-postgres and psql with the right password and rejects wrong ones with 28P01', async () => {
  const srv = await startFakeServer('scram', { alice: { secret: scramSecretFromPassword('alice-pw') } });
  try {
    const ok = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'alice', password: 'alice-pw', database: 'postgres' });
    await ok.connect();
    const res = await ok.query('select 1');
    assert.equal(res.rows[0]['?column?'], 1);
    await ok.end();

    const bad = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'alice', password: 'wrong', database: 'postgres' });
    await assert.rejects(bad.connect(), (e: { code?: string; message: string }) => e.code === '28P01' && /password authentication failed for user "alice"/.test(e.message));

    const p = await runPsql(srv.port, 'alice', 'alice-pw');
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout.trim(), '1');
    const pBad = await runPsql(srv.port, 'alice', 'nope');
    assert.notEqual(pBad.code, 0);
    assert.match(pBad.stderr, /password authentication failed for user "alice"/);
    assert.deepEqual(srv.logins.map((l) => l.ok), [true, false, true, false]);
  } finally {
    await srv.close();
  }
});

test('parseScramSecret on a rolpassword read from PostgreSQL verifies the right password and rejects a wrong one', async () => {
  const text = await rolpassword('scram_user');
  const secret = parseScramSecret(text);
  assert.ok(secret);
  assert.equal(formatScramSecret(secret), text, 'round-trips to the same text');
  const srv = await startFakeServer('scram', { scram_user: { secret } });
  try {
    const ok = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'scram_user', password: PW, database: 'postgres' });
    await ok.connect();
    await ok.end();
    const bad = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'scram_user', password: 'not-it', database: 'postgres' });
    await assert.rejects(bad.connect(), (e: { code?: string }) => e.code === '28P01');
    const p = await runPsql(srv.port, 'scram_user', PW);
    assert.equal(p.code, 0, p.stderr);
  } finally {
    await srv.close();
  }
});

test('parseScramSecret rejects text that is not a well-formed SCRAM-SHA-256 secret', () => {
  const good = formatScramSecret(scramSecretFromPassword('x'));
  assert.ok(parseScramSecret(good));
  for (const s of ['md5abc', '', 'SCRAM-SHA-256$4096:c2FsdA==$short:short', good.replace('4096', '0'), good.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'), good + '$']) {
    assert.equal(parseScramSecret(s), undefined, s);
  }
});

test('SCRAM passthrough: the ClientKey recovered from a client logs in to PostgreSQL as that user without the password', async () => {
  const secret = parseScramSecret(await rolpassword('scram_user'))!;
  const srv = await startFakeServer('scram', { scram_user: { secret } });
  let clientKey: Buffer | undefined;
  try {
    const c = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'scram_user', password: PW, database: 'postgres' });
    await c.connect();
    await c.end();
    clientKey = srv.logins[0].clientKey;
  } finally {
    await srv.close();
  }
  assert.ok(clientKey);
  const r = await rawLogin(cluster.port, 'scram_user', { scram: ScramClient.fromClientKey(secret, clientKey) });
  assert.equal(r.error, undefined);
  assert.deepEqual(r.authCodes, [10, 11, 12, 0]);

  // A secret pgshift derived itself has another salt: passthrough must fail clearly, not silently.
  const own = scramSecretFromPassword(PW);
  const server = new ScramServer(own);
  const client = new ScramClient(PW);
  server.serverFinal(client.clientFinal(server.serverFirst(client.clientFirst())));
  await assert.rejects(
    rawLogin(cluster.port, 'scram_user', { scram: ScramClient.fromClientKey(own, server.clientKey!) }),
    (e: PgError) => e.code === '28000' && /different salt/.test(e.message),
  );
  assert.throws(() => ScramClient.fromClientKey(secret, Buffer.alloc(32)), (e: PgError) => e.code === '28P01');
});

// ------------------------------------------------------------ server-side protocol checks

function exchange(secret: ScramSecret, clientFirst: string): ScramServer {
  const s = new ScramServer(secret, 'bob');
  s.serverFirst(clientFirst);
  return s;
}

test('ScramServer without TLS refuses channel-binding data (08P01, as PostgreSQL) and authzid with 0A000', () => {
  const secret = scramSecretFromPassword('pw');
  assert.throws(() => exchange(secret, 'p=tls-server-end-point,,n=,r=abc'), (e: PgError) => e.code === '08P01' && /channel binding requires TLS/.test(e.message));
  assert.throws(() => exchange(secret, 'n,a=someone,n=,r=abc'), (e: PgError) => e.code === '0A000');
  // 'y' (client could bind but thinks we cannot) is fine: without TLS we do not advertise SCRAM-SHA-256-PLUS.
  const s = new ScramServer(secret);
  assert.deepEqual(s.mechanisms, ['SCRAM-SHA-256']);
  assert.match(s.serverFirst('y,,n=*,r=abc'), /^r=abc[^,]+,s=[^,]+,i=4096$/);
  assert.equal(s.scramUser, '*');
  assert.throws(() => new ScramServer(secret).serverFirst('p=tls-server-end-point,,n=,r=abc', 'SCRAM-SHA-256-PLUS'), (e: PgError) => e.code === '08P01' && /not offered/.test(e.message));
});

/** A SCRAM-SHA-256-PLUS client-final for `server`, binding `cbData` (what the client saw). */
function plusFinal(password: string, salt: Buffer, iterations: number, bare: string, serverFirst: string, cbData: Buffer): string {
  const hmacOf = (k: Buffer, m: string) => createHmac('sha256', k).update(m).digest();
  const clientKey = hmacOf(pbkdf2Sync(password, salt, iterations, 32, 'sha256'), 'Client Key');
  const storedKey = createHash('sha256').update(clientKey).digest();
  const nonce = serverFirst.split(',')[0].slice(2);
  const withoutProof = `c=${Buffer.concat([Buffer.from('p=tls-server-end-point,,'), cbData]).toString('base64')},r=${nonce}`;
  const sig = hmacOf(storedKey, `${bare},${serverFirst},${withoutProof}`);
  return `${withoutProof},p=${Buffer.from(clientKey.map((b, i) => b ^ sig[i])).toString('base64')}`;
}

test('ScramServer with TLS: SCRAM-SHA-256-PLUS succeeds with the certificate hash, fails on another, and a "y" downgrade is refused', () => {
  const salt = Buffer.from('0123456789abcdef');
  const secret = scramSecretFromPassword('pw', salt, 4096);
  const certHash = createHash('sha256').update('the server certificate').digest();
  const good = new ScramServer(secret, 'bob', certHash);
  assert.deepEqual(good.mechanisms, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
  const first = good.serverFirst('p=tls-server-end-point,,n=,r=abc', 'SCRAM-SHA-256-PLUS');
  assert.match(good.serverFinal(plusFinal('pw', salt, 4096, 'n=,r=abc', first, certHash)), /^v=/);
  // A man in the middle terminates TLS with its own certificate: the client binds that one.
  const mitm = new ScramServer(secret, 'bob', certHash);
  const f2 = mitm.serverFirst('p=tls-server-end-point,,n=,r=abc', 'SCRAM-SHA-256-PLUS');
  assert.throws(() => mitm.serverFinal(plusFinal('pw', salt, 4096, 'n=,r=abc', f2, createHash('sha256').update('another certificate').digest())), (e: PgError) => e.code === '08P01' && /channel binding check failed/.test(e.message));
  assert.throws(() => new ScramServer(secret, 'bob', certHash).serverFirst('y,,n=,r=abc'), (e: PgError) => /negotiation error/.test(e.message));
  assert.throws(() => new ScramServer(secret, 'bob', certHash).serverFirst('n,,n=,r=abc', 'SCRAM-SHA-256-PLUS'), (e: PgError) => /without channel-binding data/.test(e.message));
  assert.throws(() => new ScramServer(secret, 'bob', certHash).serverFirst('p=tls-unique,,n=,r=abc', 'SCRAM-SHA-256-PLUS'), (e: PgError) => /unsupported SCRAM channel-binding type "tls-unique"/.test(e.message));
  // Plain SCRAM-SHA-256 ('n') is still accepted over TLS.
  assert.match(new ScramServer(secret, 'bob', certHash).serverFirst('n,,n=,r=abc'), /^r=abc/);
});

test('tls-server-end-point hashes the DER with the signature hash, SHA-256 for SHA-1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgshift-tse-'));
  try {
    for (const [digest, expected] of [['-sha1', 'sha256'], ['-sha256', 'sha256'], ['-sha384', 'sha384'], ['-sha512', 'sha512']]) {
      const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', digest, '-nodes', '-subj', '/CN=x', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')]);
      assert.equal(r.code, 0, r.stderr);
      const der = new X509Certificate(readFileSync(join(dir, 'c.pem'))).raw;
      assert.deepEqual(tlsServerEndPoint(der), createHash(expected).update(der).digest(), digest);
    }
    const ed = await run('openssl', ['req', '-x509', '-newkey', 'ed25519', '-nodes', '-subj', '/CN=x', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')]);
    assert.equal(ed.code, 0, ed.stderr);
    assert.equal(tlsServerEndPoint(new X509Certificate(readFileSync(join(dir, 'c.pem'))).raw), null, 'Ed25519 has no hash: PLUS is not offered');
    assert.equal(tlsServerEndPoint(Buffer.from([0x30, 0x82, 0xff])), null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ScramServer rejects malformed client messages with 08P01 and a wrong proof with 28P01 naming the user', () => {
  const secret = scramSecretFromPassword('pw');
  for (const bad of ['', 'x,,n=,r=abc', 'n,,r=abc', 'n,,n=,r=a,b', 'n,,m=ext,n=,r=abc', 'n,,n=,r=', 'n,x']) {
    assert.throws(() => exchange(secret, bad), (e: PgError) => e.code === '08P01', JSON.stringify(bad));
  }
  const client = new ScramClient('pw');
  const s = new ScramServer(secret, 'bob');
  const first = s.serverFirst(client.clientFirst());
  const final = client.clientFinal(first);
  const nonce = first.split(',')[0].slice(2);
  const proof = final.split(',p=')[1];
  const malformedFinals = [
    `c=eSws,r=${nonce},p=${proof}`, // header says y,, but client-first said n,,
    `c=biws,r=${nonce}x,p=${proof}`, // nonce changed
    `c=biws,r=${nonce},p=c2hvcnQ=`, // proof too short
    `c=biws,r=${nonce}`, // no proof
  ];
  for (const bad of malformedFinals) {
    const fresh = new ScramServer(secret, 'bob');
    const c = new ScramClient('pw');
    const f = fresh.serverFirst(c.clientFirst());
    const n = f.split(',')[0].slice(2);
    assert.throws(() => fresh.serverFinal(bad.replaceAll(nonce, n)), (e: PgError) => e.code === '08P01', bad);
  }
  const wrong = new ScramClient('not pw');
  const s2 = new ScramServer(secret, 'bob');
  assert.throws(
    () => s2.serverFinal(wrong.clientFinal(s2.serverFirst(wrong.clientFirst()))),
    (e: PgError) => e.code === '28P01' && e.message === 'password authentication failed for user "bob"' && e.severity === 'FATAL',
  );
  assert.equal(s2.clientKey, undefined);
  assert.ok(s.serverFinal(final).startsWith('v='));
  assert.ok(s.clientKey?.length === 32);
});

test('mockScramSecret lets an unknown user run the exchange to the end and fail like a wrong password', () => {
  const a = mockScramSecret('ghost');
  assert.ok(a.salt.equals(mockScramSecret('ghost').salt), 'salt is stable per user name');
  const client = new ScramClient('anything');
  const s = new ScramServer(a, 'ghost');
  assert.throws(() => s.serverFinal(client.clientFinal(s.serverFirst(client.clientFirst()))), (e: PgError) => e.code === '28P01');
});

test('derived secrets are cached per (password, salt, iterations) and a salt is chosen once per password', () => {
  const salt = Buffer.from('0123456789abcdef');
  const t0 = process.hrtime.bigint();
  const a = scramSecretFromPassword('cache-me', salt, 4096);
  const t1 = process.hrtime.bigint();
  const b = scramSecretFromPassword('cache-me', salt, 4096);
  const t2 = process.hrtime.bigint();
  assert.equal(a.storedKey, b.storedKey, 'the same derived key object is returned');
  assert.ok(t2 - t1 < t1 - t0, 'the cached call is faster than the PBKDF2 call');
  assert.notEqual(scramSecretFromPassword('cache-me', salt, 4097).storedKey.toString('hex'), a.storedKey.toString('hex'));
  assert.equal(scramSecretFromPassword('no-salt-given').salt, scramSecretFromPassword('no-salt-given').salt);
  assert.throws(() => scramSecretFromPassword('x', salt, 0), PgError);
});

test('saslInitialResponseData decodes mechanism and data, handles length -1, and rejects trailing or truncated bytes', () => {
  const msg = fe.saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc');
  assert.deepEqual(saslInitialResponseData(msg.subarray(5)), { mechanism: 'SCRAM-SHA-256', data: 'n,,n=,r=abc' });
  const none = Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), Buffer.from([0xff, 0xff, 0xff, 0xff])]);
  assert.deepEqual(saslInitialResponseData(none), { mechanism: 'SCRAM-SHA-256', data: '' });
  assert.throws(() => saslInitialResponseData(Buffer.concat([msg.subarray(5), Buffer.from('x')])), (e: PgError) => e.code === '08P01');
  assert.throws(() => saslInitialResponseData(msg.subarray(5, msg.length - 2)), (e: PgError) => e.code === '08P01');
  assert.throws(() => saslInitialResponseData(Buffer.from('SCRAM')), (e: PgError) => e.code === '08P01');
});
