/**
 * Client and server authentication through pgshift with real psql and node-postgres: SCRAM
 * (default) and md5 logins, the standard errors for bad credentials, and server roles whose
 * passwords are stored as md5 or SCRAM.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pgLib from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, runPsql, type ProxyFixture } from '../harness/proxy.js';
import { RawConn, errorFields } from './raw.js';
import * as fe from '../../src/wire/frontend-messages.js';
import { ScramClient } from '../../src/wire/scram.js';

const USERS = `
[[users]]
name = "app"
database = "app"
password = "secret"
server_user = "postgres"
server_password = "postgres"

[[users]]
name = "viamd5"
database = "app"
password = "clientpw1"
server_user = "md5role"
server_password = "md5pass"

[[users]]
name = "viascram"
database = "app"
password = "clientpw2"
server_user = "scramrole"
server_password = "scrampass"
`;

let pg: PgCluster;
let scram: ProxyFixture;
let md5: ProxyFixture;
before(async () => {
  pg = await PgCluster.start();
  await pg.createUser('md5role', 'md5pass', 'md5');
  await pg.createUser('scramrole', 'scrampass', 'scram-sha-256');
  scram = await startProxy(pg, { users: USERS });
  md5 = await startProxy(pg, { users: USERS, general: 'auth_type = "md5"' });
});
after(async () => {
  await scram?.stop();
  await md5?.stop();
  await pg?.stop();
});

/** The first authentication request code the proxy sends for a login of `user`. */
async function firstAuthRequest(port: number, user: string): Promise<number> {
  const c = await RawConn.connect(port);
  try {
    c.write(fe.startupMessage({ user, database: 'app' }));
    const m = await c.next();
    assert.equal(m.type, 'R');
    return m.body.readInt32BE(0);
  } finally {
    c.destroy();
  }
}

test('psql logs in with SCRAM-SHA-256 by default and runs a query', async () => {
  assert.equal(await firstAuthRequest(scram.port, 'app'), 10, 'AuthenticationSASL expected');
  const rows = await runPsql(scram.url(), 'SELECT current_user AS u, 40 + 2 AS answer');
  assert.deepEqual(rows, [{ u: 'postgres', answer: '42' }]);
});

test('psql logs in with md5 when auth_type = "md5"', async () => {
  assert.equal(await firstAuthRequest(md5.port, 'app'), 5, 'AuthenticationMD5Password expected');
  const rows = await runPsql(md5.url(), 'SELECT 7 AS seven');
  assert.deepEqual(rows, [{ seven: '7' }]);
});

test('a wrong password is rejected with 28P01 "password authentication failed" (SCRAM and md5)', async () => {
  for (const px of [scram, md5]) {
    await assert.rejects(runPsql(px.url('app', 'wrong'), 'SELECT 1'), /password authentication failed for user "app"/);
    const c = new pgLib.Client({ host: '127.0.0.1', port: px.port, user: 'app', password: 'wrong', database: 'app' });
    c.on('error', () => undefined);
    await assert.rejects(c.connect(), (e: { code?: string; message: string }) => e.code === '28P01' && /password authentication failed for user "app"/.test(e.message));
  }
  // The proxy still accepts the right password afterwards.
  assert.deepEqual(await runPsql(scram.url(), 'SELECT 1 AS x'), [{ x: '1' }]);
});

test('an unknown user or database runs the full SCRAM exchange and only then gets 28P01, like a wrong password', async () => {
  for (const [user, database] of [['nobody', 'app'], ['app', 'nosuchdb']]) {
    const c = await RawConn.connect(scram.port);
    c.write(fe.startupMessage({ user, database }));
    const req = await c.next();
    assert.equal(req.type, 'R', 'an authentication request comes first, not an error');
    assert.equal(req.body.readInt32BE(0), 10, 'AuthenticationSASL');
    const client = new ScramClient('guess');
    c.write(fe.saslInitialResponse('SCRAM-SHA-256', client.clientFirst()));
    const cont = await c.next();
    assert.equal(cont.type, 'R');
    assert.equal(cont.body.readInt32BE(0), 11, 'AuthenticationSASLContinue with a salt and iterations');
    assert.match(cont.body.subarray(4).toString(), /,s=[A-Za-z0-9+/=]+,i=4096$/);
    c.write(fe.saslResponse(client.clientFinal(cont.body.subarray(4).toString('utf8'))));
    const m = await c.next();
    assert.equal(m.type, 'E');
    const f = errorFields(m);
    assert.equal(f.S, 'FATAL');
    assert.equal(f.C, '28P01');
    assert.equal(f.M, `password authentication failed for user "${user}"`);
    assert.ok(await c.closesWithin(2000), 'proxy closes the connection after a FATAL error');
  }
  // With real clients it looks exactly like a wrong password.
  await assert.rejects(runPsql(scram.url('nobody', 'x'), 'SELECT 1'), /password authentication failed for user "nobody"/);
  const c = new pgLib.Client({ host: '127.0.0.1', port: scram.port, user: 'app', password: 'secret', database: 'nosuchdb' });
  c.on('error', () => undefined);
  await assert.rejects(c.connect(), (e: { code?: string }) => e.code === '28P01');
});

test('with md5, an unknown user is asked for an md5 password and then gets 28P01', async () => {
  const c = await RawConn.connect(md5.port);
  c.write(fe.startupMessage({ user: 'nobody', database: 'app' }));
  const req = await c.next();
  assert.equal(req.type, 'R');
  assert.equal(req.body.readInt32BE(0), 5, 'AuthenticationMD5Password');
  c.write(fe.passwordMessage('md5' + '0'.repeat(32)));
  const f = errorFields(await c.next());
  assert.equal(f.C, '28P01');
  assert.equal(f.M, 'password authentication failed for user "nobody"');
});

test('server roles with md5- and SCRAM-stored passwords both work as server_user', async () => {
  const stored = await pg.query<{ rolname: string; p: string }>(
    "SELECT rolname, left(rolpassword, 6) AS p FROM pg_authid WHERE rolname IN ('md5role', 'scramrole') ORDER BY rolname",
  );
  assert.deepEqual(stored.map((r) => r.rolname), ['md5role', 'scramrole']);
  assert.ok(stored[0].p.startsWith('md5'), 'md5role stores an md5 hash');
  assert.equal(stored[1].p, 'SCRAM-', 'scramrole stores a SCRAM secret');
  for (const px of [scram, md5]) {
    assert.deepEqual(await runPsql(px.url('viamd5', 'clientpw1'), 'SELECT current_user AS u'), [{ u: 'md5role' }]);
    assert.deepEqual(await runPsql(px.url('viascram', 'clientpw2'), 'SELECT current_user AS u'), [{ u: 'scramrole' }]);
  }
});

test('a wrong server_password surfaces the server\'s authentication error to the client', async () => {
  const px = await startProxy(pg, {
    users: `[[users]]\nname = "app"\ndatabase = "app"\npassword = "secret"\nserver_user = "scramrole"\nserver_password = "not-the-password"\n`,
  });
  try {
    await assert.rejects(runPsql(px.url(), 'SELECT 1'), /password authentication failed for user "scramrole"/);
  } finally {
    await px.stop();
  }
});
