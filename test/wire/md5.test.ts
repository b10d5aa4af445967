import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createHash } from 'node:crypto';
import { PgCluster } from '../harness/pg-cluster.js';
import { md5PasswordHash, md5StoredHash, md5HashFromStored, isMd5StoredHash, verifyMd5, verifyMd5Stored } from '../../src/wire/md5.js';
import { rawLogin, startFakeServer, runPsql } from './auth-fixtures.js';

let cluster: PgCluster;
const PW = 'md5 pässword';

before(async () => {
  cluster = await PgCluster.start();
  await cluster.createUser('md5_user', PW, 'md5');
});

after(async () => {
  await cluster?.stop();
});

async function rolpassword(user: string): Promise<string> {
  const rows = await cluster.query<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [user]);
  return rows[0].rolpassword;
}

test('md5PasswordHash logs in to PostgreSQL: MD5 request answered, AuthenticationOk then ReadyForQuery', async () => {
  const r = await rawLogin(cluster.port, 'md5_user', { password: PW });
  assert.equal(r.error, undefined);
  assert.deepEqual(r.authCodes, [5, 0]);
  assert.equal(r.types[r.types.length - 1], 'Z');
});

test('a wrong md5 password gets ErrorResponse 28P01 from PostgreSQL', async () => {
  const r = await rawLogin(cluster.port, 'md5_user', { password: 'md5 password' });
  assert.equal(r.error?.code, '28P01');
  assert.match(r.error!.message, /password authentication failed for user "md5_user"/);
});

test('md5StoredHash equals the rolpassword PostgreSQL stores, and the stored hash alone logs in (md5 passthrough)', async () => {
  const stored = await rolpassword('md5_user');
  assert.equal(md5StoredHash('md5_user', PW), stored);
  assert.ok(isMd5StoredHash(stored));
  assert.ok(!isMd5StoredHash(PW));
  const r = await rawLogin(cluster.port, 'md5_user', { md5Stored: stored });
  assert.equal(r.error, undefined);
  assert.deepEqual(r.authCodes, [5, 0]);
});

test('md5 server side accepts node-postgres and psql with the right password and rejects wrong ones with 28P01', async () => {
  const srv = await startFakeServer('md5', { carol: { password: 'carol-pw' } });
  try {
    const ok = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'carol', password: 'carol-pw', database: 'postgres' });
    await ok.connect();
    assert.equal((await ok.query('select 1')).rows[0]['?column?'], 1);
    await ok.end();
    const bad = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'carol', password: 'carol-PW', database: 'postgres' });
    await assert.rejects(bad.connect(), (e: { code?: string; message: string }) => e.code === '28P01' && /for user "carol"/.test(e.message));
    const p = await runPsql(srv.port, 'carol', 'carol-pw');
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout.trim(), '1');
    const pBad = await runPsql(srv.port, 'carol', 'wrong');
    assert.notEqual(pBad.code, 0);
    assert.match(pBad.stderr, /password authentication failed for user "carol"/);
    assert.deepEqual(srv.logins.map((l) => l.ok), [true, false, true, false]);
  } finally {
    await srv.close();
  }
});

test('md5 server side verifies against a stored hash read from pg_authid', async () => {
  const srv = await startFakeServer('md5', { md5_user: { md5Stored: await rolpassword('md5_user') } });
  try {
    const ok = new pg.Client({ host: '127.0.0.1', port: srv.port, user: 'md5_user', password: PW, database: 'postgres' });
    await ok.connect();
    await ok.end();
    const p = await runPsql(srv.port, 'md5_user', 'nope');
    assert.notEqual(p.code, 0);
    assert.match(p.stderr, /password authentication failed/);
  } finally {
    await srv.close();
  }
});

test('md5 hashing matches the documented formula and verification rejects near misses', () => {
  const salt = Buffer.from([0x01, 0x02, 0xfe, 0xff]);
  const h = md5PasswordHash('u', 'p', salt);
  assert.match(h, /^md5[0-9a-f]{32}$/);
  assert.equal(h, md5HashFromStored(md5StoredHash('u', 'p'), salt));
  // Password first, then user; the salt is appended to the inner hex digest as raw bytes.
  assert.equal(md5StoredHash('u', 'p'), 'md5' + md5Of('pu'));
  assert.equal(h, 'md5' + md5Of(Buffer.concat([Buffer.from(md5Of('pu')), salt])));
  assert.ok(verifyMd5('u', 'p', salt, h));
  assert.ok(verifyMd5Stored(md5StoredHash('u', 'p'), salt, h));
  assert.ok(!verifyMd5('u', 'p', salt, h.toUpperCase()));
  assert.ok(!verifyMd5('u', 'p', salt, h.slice(0, -1)));
  assert.ok(!verifyMd5('u', 'p', Buffer.from([1, 2, 3, 4]), h));
  assert.ok(!verifyMd5('v', 'p', salt, h), 'the user name is part of the hash');
  assert.ok(!verifyMd5('u', 'p', salt, ''));
});

function md5Of(s: string | Buffer): string {
  return createHash('md5').update(s).digest('hex');
}
