/**
 * Limits that hold against hostile or careless clients: the largest message (max_packet_size),
 * big messages reassembled without stalling other clients.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { RawConn, errorFields } from './raw.js';
import * as fe from '../../src/wire/frontend-messages.js';

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
