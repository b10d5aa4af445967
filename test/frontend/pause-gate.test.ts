/**
 * The pause gate: PauseGate's contract (arrival order, open-transaction counts, quiet, timeout)
 * and the same behaviour end to end through MAINTENANCE / PAUSE / RESUME on the admin database
 * with real clients.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, runPsql, type ProxyFixture } from '../harness/proxy.js';
import { PauseGate, type GateHolder } from '../../src/frontend/pause-gate.js';
import { PgError } from '../../src/wire/pg-error.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves to 'pending' if `p` has not settled after `ms`. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<'settled' | 'pending'> {
  return Promise.race([p.then(() => 'settled' as const, () => 'settled' as const), sleep(ms).then(() => 'pending' as const)]);
}

describe('PauseGate (unit)', () => {
  test('an open gate lets transactions through immediately', () => {
    const g = new PauseGate(0);
    assert.equal(g.enter('app'), null);
    assert.equal(g.isClosed('app'), false);
  });

  test('a closed gate releases waiters in arrival order when opened', async () => {
    const g = new PauseGate(0);
    g.close('app', 'maintenance');
    const order: number[] = [];
    const waits = [0, 1, 2, 3, 4].map((i) => g.enter('app')!.then(() => order.push(i)));
    assert.equal(g.waiting('app'), 5);
    await sleep(20);
    assert.deepEqual(order, [], 'nobody passes a closed gate');
    g.open('app');
    await Promise.all(waits);
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.equal(g.waiting(), 0);
  });

  test('closing one database does not hold another; closing all holds every database', async () => {
    const g = new PauseGate(0);
    g.close('a');
    assert.equal(g.enter('b'), null);
    const wa = g.enter('a');
    assert.ok(wa);
    g.close(); // all
    const wb = g.enter('b');
    assert.ok(wb);
    g.open('a'); // '*' still closed
    assert.equal(await settledWithin(wa, 20), 'pending');
    g.open();
    await wa;
    await wb;
  });

  test('openTransactions counts begin/end per database and in total', () => {
    const g = new PauseGate(0);
    g.begin('a');
    g.begin('a');
    g.begin('b');
    assert.equal(g.openTransactions('a'), 2);
    assert.equal(g.openTransactions('b'), 1);
    assert.equal(g.openTransactions('*'), 3);
    g.end('a');
    assert.equal(g.openTransactions('a'), 1);
    assert.equal(g.openTransactions('*'), 2);
  });

  test('quiet() resolves at once when idle, otherwise when the last open transaction of that database ends', async () => {
    const g = new PauseGate(0);
    await g.quiet('a');
    g.begin('a');
    g.begin('a');
    g.begin('b');
    let quietA = false;
    let quietAll = false;
    const qa = g.quiet('a').then(() => (quietA = true));
    const qall = g.quiet().then(() => (quietAll = true));
    g.end('a');
    await sleep(5);
    assert.equal(quietA, false);
    g.end('a');
    await qa;
    assert.equal(quietA, true);
    assert.equal(quietAll, false, 'b is still open');
    g.end('b');
    await qall;
  });

  test('a waiter that outlives timeoutMs gets a clear 57014 error; others keep waiting', async () => {
    const g = new PauseGate(50);
    g.close('app', 'maintenance');
    const w = g.enter('app')!;
    await assert.rejects(w, (e: PgError) => e.code === '57014' && /pause_timeout/.test(e.message) && /maintenance/.test(e.message));
    assert.equal(g.waiting('app'), 0);
    g.timeoutMs = 0;
    const w2 = g.enter('app')!;
    await sleep(80);
    g.open('app');
    await w2;
  });

  test('holdersOf lists the holders of open transactions; failAll rejects waiters', async () => {
    const g = new PauseGate(0);
    const h: GateHolder = { abortTransaction: () => undefined };
    g.begin('a', h);
    assert.deepEqual(g.holdersOf('a'), [h]);
    g.end('a', h);
    assert.deepEqual(g.holdersOf('a'), []);
    g.close();
    const w = g.enter('a')!;
    g.failAll(new PgError('57P01', 'shutting down'));
    await assert.rejects(w, /shutting down/);
  });
});

describe('pause gate through the proxy', () => {
  let pg: PgCluster;
  let px: ProxyFixture;
  before(async () => {
    pg = await PgCluster.start();
    px = await startProxy(pg, { general: 'default_pool_size = 1\npause_timeout = 0' });
    await pg.query('CREATE TABLE arrivals (seq serial PRIMARY KEY, who int)');
  });
  after(async () => {
    await px?.stop();
    await pg?.stop();
  });

  test('MAINTENANCE ON holds queries without error; after OFF they run in arrival order', async () => {
    const clients = await Promise.all([0, 1, 2, 3, 4].map(() => px.client()));
    await px.admin('MAINTENANCE ON');
    const results: Promise<unknown>[] = [];
    for (let i = 0; i < clients.length; i++) {
      results.push(clients[i].query('INSERT INTO arrivals (who) VALUES ($1) RETURNING seq', [i]));
      // Arrival order is the order the proxy received them: wait until this one is queued.
      for (const deadline = Date.now() + 10_000; px.proxy.gate.waiting('app') < i + 1 && Date.now() < deadline; ) await sleep(5);
    }
    assert.equal(await settledWithin(Promise.race(results), 300), 'pending', 'queries wait while in maintenance');
    assert.equal(px.proxy.gate.waiting('app'), 5);
    const pools = await px.admin('SHOW POOLS');
    assert.equal(pools[0].paused, 't', 'SHOW POOLS reports the pool as paused');
    await px.admin('MAINTENANCE OFF');
    await Promise.all(results);
    const rows = await pg.query<{ who: number }>('SELECT who FROM arrivals ORDER BY seq');
    assert.deepEqual(rows.map((r) => r.who), [0, 1, 2, 3, 4]);
    await Promise.all(clients.map((c) => c.end()));
  });

  test('a transaction open when the gate closes runs its later statements and commits', async () => {
    await pg.query('CREATE TABLE in_flight (v int)');
    const tx = await px.client();
    const other = await px.client();
    await tx.query('BEGIN');
    await tx.query('INSERT INTO in_flight VALUES (1)');
    await px.admin('MAINTENANCE ON');
    assert.equal(px.proxy.gate.openTransactions('app'), 1);
    const waiting = other.query('SELECT count(*)::int AS n FROM in_flight');
    for (const deadline = Date.now() + 10_000; px.proxy.gate.waiting('app') < 1 && Date.now() < deadline; ) await sleep(5);
    assert.equal(px.proxy.gate.waiting('app'), 1, 'the new transaction waits at the gate');
    await tx.query('INSERT INTO in_flight VALUES (2)');
    await tx.query('COMMIT');
    assert.equal(px.proxy.gate.openTransactions('app'), 0);
    assert.equal(await settledWithin(waiting, 200), 'pending', 'a new transaction still waits');
    await px.admin('MAINTENANCE OFF');
    assert.equal((await waiting).rows[0].n, 2);
    await tx.end();
    await other.end();
  });

  test('PAUSE app returns only after open transactions finish; RESUME lets waiters run', async () => {
    const tx = await px.client();
    const other = await px.client();
    await tx.query('BEGIN');
    await tx.query('SELECT 1');
    const pause = px.admin('PAUSE app');
    // psql may take a while to start on a loaded machine: wait until the command has arrived.
    for (const deadline = Date.now() + 10_000; !px.proxy.gate.isClosed('app') && Date.now() < deadline; ) await sleep(10);
    assert.ok(px.proxy.gate.isClosed('app'), 'PAUSE closed the gate');
    assert.equal(await settledWithin(pause, 300), 'pending', 'PAUSE waits for the open transaction');
    const held = other.query('SELECT 42 AS v');
    await tx.query('COMMIT');
    await pause;
    assert.equal(await settledWithin(held, 200), 'pending', 'queries wait while paused');
    await px.admin('RESUME app');
    assert.equal((await held).rows[0].v, 42);
    await tx.end();
    await other.end();
  });

  test('MAINTENANCE ON for one database does not hold another database', async () => {
    const two = await startProxy(pg, {
      databases: `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${pg.port}\ndatabase_name = "postgres"\n\n[[databases]]\nname = "other"\nhost = "127.0.0.1"\nport = ${pg.port}\ndatabase_name = "postgres"\n`,
      users: `[[users]]\nname = "app"\ndatabase = "app"\npassword = "secret"\nserver_user = "postgres"\nserver_password = "postgres"\n\n[[users]]\nname = "app"\ndatabase = "other"\npassword = "secret"\nserver_user = "postgres"\nserver_password = "postgres"\n`,
    });
    try {
      const a = await two.client();
      const o = await two.client({ database: 'other' });
      await two.admin('MAINTENANCE ON app');
      const heldA = a.query('SELECT 1 AS v');
      assert.equal((await o.query('SELECT 2 AS v')).rows[0].v, 2, 'the other database is not paused');
      assert.equal(await settledWithin(heldA, 200), 'pending');
      await two.admin('MAINTENANCE OFF app');
      assert.equal((await heldA).rows[0].v, 1);
    } finally {
      await two.stop();
    }
  });

  test('pause_timeout: a waiting client gets a clear error and its connection works after RESUME', async () => {
    const short = await startProxy(pg, { general: 'pause_timeout = 300' });
    try {
      const c = await short.client();
      await short.admin('PAUSE');
      const t0 = Date.now();
      await assert.rejects(c.query('SELECT 1'), (e: { code?: string; message: string }) => e.code === '57014' && /pause_timeout/.test(e.message));
      assert.ok(Date.now() - t0 >= 250);
      // Extended protocol too: the error ends the request and the client stays in step.
      await assert.rejects(c.query('SELECT $1::int AS v', [1]), /pause_timeout/);
      await short.admin('RESUME');
      assert.equal((await c.query('SELECT $1::int AS v', [9])).rows[0].v, 9);
      assert.equal((await c.query('SELECT 8 AS v')).rows[0].v, 8);
      // psql sees the same error text.
      await short.admin('PAUSE');
      await assert.rejects(runPsql(short.url(), 'SELECT 1'), /longer than pause_timeout/);
      await short.admin('RESUME');
    } finally {
      await short.stop();
    }
  });
});
