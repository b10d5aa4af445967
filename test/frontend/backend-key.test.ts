/**
 * BackendKeyData: pids and secrets are random (not guessable from the order of connections),
 * distinct per client, and a CancelRequest needs the exact pair.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { RawConn } from './raw.js';
import * as fe from '../../src/wire/frontend-messages.js';

let pg: PgCluster;
let px: ProxyFixture;

before(async () => {
  pg = await PgCluster.start();
  px = await startProxy(pg);
});
after(async () => {
  await px?.stop();
  await pg?.stop();
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
