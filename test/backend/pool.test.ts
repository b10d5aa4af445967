/**
 * Server connections and pools against real PostgreSQL: authentication to md5 and SCRAM roles,
 * internal queries, cancel, size limits, the FIFO wait queue and checkout_timeout, health
 * checks, and reconnecting after a restart.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { ServerConnection } from '../../src/backend/server.js';
import { Pool, type PoolOptions } from '../../src/backend/pool.js';
import { PgError } from '../../src/wire/pg-error.js';

let pg: PgCluster;
before(async () => {
  pg = await PgCluster.start();
  await pg.createUser('md5srv', 'pw-md5', 'md5');
  await pg.createUser('scramsrv', 'pw-scram', 'scram-sha-256');
});
after(async () => {
  await pg?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function opts(o: Partial<PoolOptions> = {}): PoolOptions {
  return { size: 2, minSize: 0, mode: 'transaction', connectTimeout: 5000, checkoutTimeout: 5000, idleTimeout: 60_000, healthcheckInterval: 30_000, healthcheckTimeout: 5000, ...o };
}

function pool(o: Partial<PoolOptions> = {}, user = 'postgres', password = 'postgres'): Pool {
  return new Pool({ user, database: 'app', shard: 0, role: 'primary' }, { host: pg.host, port: pg.port, database: 'postgres', user, password }, opts(o));
}

test('ServerConnection logs in to md5- and SCRAM-stored roles and runs queries', async () => {
  for (const [user, password] of [['md5srv', 'pw-md5'], ['scramsrv', 'pw-scram']]) {
    const c = await ServerConnection.connect({ host: pg.host, port: pg.port, database: 'postgres', user, password, connectTimeout: 5000 });
    const r = await c.query('SELECT current_user AS u, 1 + 1 AS two');
    assert.deepEqual(r.fields, ['u', 'two']);
    assert.deepEqual(r.rows, [[user, '2']]);
    assert.ok(c.pid > 0);
    assert.equal(c.params.get('server_encoding'), 'UTF8');
    c.destroy();
  }
});

test('ServerConnection reports a wrong password as 28P01 and a query error without losing sync', async () => {
  await assert.rejects(
    ServerConnection.connect({ host: pg.host, port: pg.port, database: 'postgres', user: 'scramsrv', password: 'bad', connectTimeout: 5000 }),
    (e: PgError) => e.code === '28P01',
  );
  const c = await ServerConnection.connect({ host: pg.host, port: pg.port, database: 'postgres', user: 'postgres', password: 'postgres', connectTimeout: 5000 });
  await assert.rejects(c.query('SELECT 1/0'), (e: PgError) => e.code === '22012');
  assert.deepEqual((await c.query('SELECT 3')).rows, [['3']]);
  c.destroy();
});

test('ServerConnection.cancel stops a running query', async () => {
  const c = await ServerConnection.connect({ host: pg.host, port: pg.port, database: 'postgres', user: 'postgres', password: 'postgres', connectTimeout: 5000 });
  const t0 = Date.now();
  const q = c.query('SELECT pg_sleep(20)').then(
    () => null,
    (e: PgError) => e,
  );
  await sleep(200);
  await c.cancel();
  assert.equal((await q)?.code, '57014');
  assert.ok(Date.now() - t0 < 10_000);
  c.destroy();
});

test('a connection to a closed port fails fast with a clear error', async () => {
  const p = new Pool({ user: 'postgres', database: 'app', shard: 0, role: 'primary' }, { host: '127.0.0.1', port: 1, database: 'postgres', user: 'postgres', password: 'postgres' }, opts());
  await assert.rejects(p.checkout(), (e: PgError) => e.code.startsWith('08') && /127\.0\.0\.1:1/.test(e.message));
  assert.equal(p.healthy, false);
  p.close();
});

test('the pool never exceeds its size; waiters are served in FIFO order', async () => {
  const p = pool({ size: 2 });
  const a = await p.checkout();
  const b = await p.checkout();
  assert.equal(p.total, 2);
  const order: number[] = [];
  const waits = [0, 1, 2].map((i) => p.checkout().then((c) => (order.push(i), c)));
  await sleep(20);
  assert.equal(p.waitingCount, 3);
  p.release(a);
  const c0 = await waits[0];
  assert.equal(c0, a, 'a released connection goes straight to the first waiter');
  p.release(b);
  const c1 = await waits[1];
  p.release(c0);
  const c2 = await waits[2];
  assert.deepEqual(order, [0, 1, 2]);
  assert.equal(p.total, 2);
  p.release(c1);
  p.release(c2);
  assert.equal(p.idleCount, 2);
  p.close();
});

test('checkout_timeout: a waiter gets a clear error naming the pool size', async () => {
  const p = pool({ size: 1, checkoutTimeout: 150 });
  const a = await p.checkout();
  await assert.rejects(p.checkout(), (e: PgError) => /checkout_timeout \(150 ms\)/.test(e.message) && /pool size is 1/.test(e.message));
  assert.equal(p.waitingCount, 0);
  p.release(a);
  const again = await p.checkout();
  assert.equal(again, a);
  p.release(again);
  p.close();
});

test('release(conn, false) and a connection left inside a transaction are closed, not reused', async () => {
  const p = pool({ size: 1 });
  const a = await p.checkout();
  p.release(a, false);
  assert.equal(a.closed, true);
  const b = await p.checkout();
  assert.notEqual(b, a);
  await b.query('BEGIN');
  p.release(b);
  assert.equal(b.closed, true, 'a connection in a transaction is never handed to another client');
  const c = await p.checkout();
  assert.equal((await c.query('SELECT 1')).rows[0][0], '1');
  p.release(c);
  p.close();
});

test('an idle connection killed on the server is detected by the health check and replaced', async () => {
  const p = pool({ size: 1, healthcheckInterval: 0 });
  const a = await p.checkout();
  const pid = a.pid;
  p.release(a);
  await pg.query('SELECT pg_terminate_backend($1)', [pid]);
  await sleep(100);
  const b = await p.checkout();
  assert.notEqual(b.pid, pid);
  assert.equal((await b.query('SELECT 1')).rows[0][0], '1');
  p.release(b);
  p.close();
});

test('a frozen server (SIGSTOP) fails its health check after healthcheck_timeout and is replaced', async () => {
  const p = pool({ size: 1, healthcheckInterval: 0, healthcheckTimeout: 300 });
  const a = await p.checkout();
  const pid = a.pid;
  p.release(a);
  await sleep(5);
  process.kill(pid, 'SIGSTOP');
  try {
    const t0 = Date.now();
    const b = await p.checkout();
    assert.ok(Date.now() - t0 < 3000, `checkout waited ${Date.now() - t0} ms behind the health check`);
    assert.notEqual(b.pid, pid, 'a new server connection');
    assert.equal(a.closed, true, 'the frozen one was closed');
    p.release(b);
  } finally {
    process.kill(pid, 'SIGCONT');
    p.close();
  }
});

test('concurrent checkouts during health checks never exceed the pool size', async () => {
  const p = pool({ size: 2, healthcheckInterval: 0 });
  const first = await Promise.all([p.checkout(), p.checkout()]);
  for (const c of first) p.release(c);
  await sleep(5); // both idle connections are now due for a health check
  // Health checks run on both idle connections while more checkouts arrive.
  const many = Array.from({ length: 6 }, () => p.checkout().then(async (c) => {
    assert.ok(p.total <= 2, `pool total ${p.total} exceeds size 2`);
    await c.query('SELECT 1');
    p.release(c);
  }));
  assert.ok(p.total <= 2, `pool total ${p.total} exceeds size 2 while health checks run`);
  await Promise.all(many);
  assert.ok(p.total <= 2);
  assert.ok(p.stats.healthchecks >= 2, 'health checks ran');
  const [{ n }] = await pg.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'postgres' AND backend_type = 'client backend' AND pid <> pg_backend_pid()");
  assert.ok(Number(n) <= 2, `server sees ${n} connections`);
  p.close();
});

test('after a server restart the pool reconnects; closed pools refuse checkouts', async () => {
  const p = pool({ size: 2 });
  const a = await p.checkout();
  p.release(a);
  await pg.restart('fast');
  await sleep(100);
  const b = await p.checkout();
  assert.notEqual(b.pid, a.pid);
  assert.equal((await b.query('SELECT 1')).rows[0][0], '1');
  p.release(b);
  p.close();
  await assert.rejects(p.checkout(), (e: PgError) => e.code === '57P03');
});

test('maintain() keeps min_pool_size open and closes connections idle past idle_timeout', async () => {
  const p = pool({ size: 3, minSize: 1, idleTimeout: 50 });
  p.maintain();
  for (const deadline = Date.now() + 5000; p.idleCount < 1 && Date.now() < deadline; ) await sleep(10);
  assert.equal(p.idleCount, 1);
  const cs = await Promise.all([p.checkout(), p.checkout(), p.checkout()]);
  for (const c of cs) p.release(c);
  assert.equal(p.idleCount, 3);
  await sleep(100);
  p.maintain();
  assert.equal(p.idleCount, 1, 'idle connections beyond min_pool_size are closed');
  p.close();
});
