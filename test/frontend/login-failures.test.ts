/**
 * Failed logins are logged (rate-limited, with the real reason), counted in metrics, and after
 * three in a row from one address answered ever more slowly (auth_failure_delay); a successful
 * login resets the count.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { createMetrics } from '../../src/observe/metrics.js';
import { RawConn } from './raw.js';

let pg: PgCluster;
let px: ProxyFixture;
const lines: string[] = [];

before(async () => {
  pg = await PgCluster.start();
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  px = await startProxy(pg, { general: 'auth_failure_delay = 300', log });
});
after(async () => {
  await px?.stop();
  await pg?.stop();
});

/** One login attempt; returns whether it succeeded and how long the answer took. */
async function attempt(user: string, password: string): Promise<{ ok: boolean; ms: number }> {
  const c = await RawConn.connect(px.port);
  const t0 = performance.now();
  try {
    await c.login(user, password, 'app');
    return { ok: true, ms: performance.now() - t0 };
  } catch (err) {
    assert.match((err as Error).message, /password authentication failed/);
    return { ok: false, ms: performance.now() - t0 };
  } finally {
    c.destroy();
  }
}

test('failed logins are logged with their reason, counted, and slowed down after three in a row', async () => {
  const first = await attempt('nobody', 'x');
  assert.equal(first.ok, false);
  const warned = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'client login failed');
  assert.equal(warned.length, 1, 'the failure is logged at the default level');
  assert.equal(warned[0].user, 'nobody');
  assert.match(warned[0].reason, /no user "nobody" for database "app"/);
  const times = [first.ms];
  for (let i = 0; i < 4; i++) {
    const r = await attempt('app', 'wrong');
    assert.equal(r.ok, false);
    times.push(r.ms);
  }
  // Failures 1-3 are answered at once, then 300 ms, then 600 ms.
  assert.ok(times.slice(0, 3).every((t) => t < 250), `first failures: ${times.map(Math.round).join(', ')}`);
  assert.ok(times[3] >= 290 && times[3] < 1500, `4th failure took ${Math.round(times[3])} ms`);
  assert.ok(times[4] >= 590, `5th failure took ${Math.round(times[4])} ms`);
  assert.equal(lines.filter((l) => l.includes('client login failed')).length, 1, 'later failures within 10 s are not logged again');

  const text = await createMetrics(px.proxy).metrics();
  assert.match(text, /^pgshift_login_failures_total 5$/m);

  // A success resets the count: the next failure is answered at once again.
  assert.equal((await attempt('app', 'secret')).ok, true);
  const after = await attempt('app', 'wrong');
  assert.ok(after.ms < 250, `failure after a success took ${Math.round(after.ms)} ms`);
});
