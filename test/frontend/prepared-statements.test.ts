/**
 * Prepared statements shared between clients on one server connection (transaction mode) stay
 * isolated: a client cannot PREPARE or DEALLOCATE pgshift's server-side names, and its
 * DISCARD ALL / DEALLOCATE ALL drop its own statements only.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pgLib from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { RawConn, errorFields } from './raw.js';
import * as fe from '../../src/wire/frontend-messages.js';

let pg: PgCluster;
let px: ProxyFixture;
let victim: pgLib.Client;

before(async () => {
  pg = await PgCluster.start();
  // One server connection: every client shares it, and its prepared statements.
  px = await startProxy(pg, { general: 'default_pool_size = 1\nmin_pool_size = 1' });
  await pg.query('CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner text NOT NULL, balance numeric)');
  await pg.query("INSERT INTO accounts (owner, balance) VALUES ('alice', 100), ('bob', NULL)");
  victim = await px.client();
});
after(async () => {
  await px?.stop();
  await pg?.stop();
});

const victimQuery = { name: 'balance_of', text: 'SELECT balance::text AS b FROM accounts WHERE owner = $1' };

async function victimStillWorks(): Promise<void> {
  const r = await victim.query({ ...victimQuery, values: ['alice'] });
  assert.deepEqual(r.rows, [{ b: '100' }]);
}

/** Sends one simple query and returns the error fields, or null when it succeeded. */
async function simple(c: RawConn, sql: string): Promise<Record<string, string> | null> {
  c.write(fe.query(sql));
  const msgs = await c.until('Z');
  const e = msgs.find((m) => m.type === 'E');
  return e ? errorFields(e) : null;
}

test('a client cannot DEALLOCATE or PREPARE over pgshift statement names (simple and extended protocol)', async () => {
  await victimStillWorks();
  const c = await RawConn.connect(px.port);
  await c.login('app', 'secret', 'app');
  for (const sql of ['DEALLOCATE pgshift_1', 'DEALLOCATE PREPARE "pgshift_1"', 'PREPARE pgshift_1 AS SELECT 666::text AS b', 'SELECT 1; DEALLOCATE PGSHIFT_1']) {
    const f = await simple(c, sql);
    assert.ok(f, `${sql} is refused`);
    assert.equal(f.C, '42939', sql);
    assert.match(f.M, /reserved by pgshift/);
    await victimStillWorks();
  }
  // The same through Parse/Bind/Execute, unnamed and named.
  c.write(Buffer.concat([fe.parse('', 'DEALLOCATE pgshift_1'), fe.bind('', '', [], []), fe.execute('', 0), fe.sync()]));
  assert.equal(errorFields((await c.until('Z')).find((m) => m.type === 'E')!).C, '42939');
  c.write(Buffer.concat([fe.parse('mine', 'DEALLOCATE pgshift_1'), fe.bind('', 'mine', [], []), fe.execute('', 0), fe.sync()]));
  assert.equal(errorFields((await c.until('Z')).find((m) => m.type === 'E')!).C, '42939');
  await victimStillWorks();
  // Inside a transaction the refusal aborts it, as any error would.
  assert.equal(await simple(c, 'BEGIN'), null);
  assert.equal((await simple(c, 'DEALLOCATE pgshift_1'))?.C, '42939');
  assert.equal((await simple(c, 'SELECT 1'))?.C, '25P02');
  assert.equal(await simple(c, 'ROLLBACK'), null);
  await victimStillWorks();
  c.destroy();
});

test("DISCARD ALL and DEALLOCATE ALL drop the client's own statements only", async () => {
  for (const reset of ['DISCARD ALL', 'DEALLOCATE ALL', 'deallocate prepare all']) {
    await victimStillWorks();
    const c = await RawConn.connect(px.port);
    await c.login('app', 'secret', 'app');
    c.write(Buffer.concat([fe.parse('own', 'SELECT 1::text AS one'), fe.sync()]));
    await c.until('Z');
    assert.equal(await simple(c, reset), null, `${reset} succeeds`);
    // The client's own statement is gone, as after a real DISCARD ALL.
    c.write(Buffer.concat([fe.bind('', 'own', [], []), fe.execute('', 0), fe.sync()]));
    const own = (await c.until('Z')).find((m) => m.type === 'E');
    assert.ok(own, 'its own statement no longer exists');
    assert.equal(errorFields(own).C, '26000');
    // Every other client's statements still work on the same server connection.
    await victimStillWorks();
    const other = await px.client();
    assert.deepEqual((await other.query({ ...victimQuery, values: ['bob'] })).rows, [{ b: null }]);
    await other.end();
    c.destroy();
  }
});

test('prepared_statements_limit: statements no client holds are evicted least recently used first; held ones keep working', async () => {
  const small = await startProxy(pg, { general: 'prepared_statements_limit = 10' });
  try {
    const holder = await small.client();
    const held = { name: 'held', text: 'SELECT owner FROM accounts WHERE id = $1' };
    assert.deepEqual((await holder.query({ ...held, values: [1] })).rows, [{ owner: 'alice' }]);
    // 200 clients each prepare distinct statements, then leave.
    for (let i = 0; i < 20; i++) {
      const c = await small.client();
      for (let j = 0; j < 10; j++) {
        const r = await c.query({ name: `s${j}`, text: `SELECT $1::int + ${i * 10 + j} AS v`, values: [1] });
        assert.equal(r.rows[0].v, 1 + i * 10 + j);
      }
      await c.end();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(small.proxy.statements.size <= 10, `registry holds ${small.proxy.statements.size} statements`);
    // The statement a connected client holds survived the churn.
    assert.deepEqual((await holder.query({ ...held, values: [2] })).rows, [{ owner: 'bob' }]);
    // An evicted statement prepared again works (it gets a new server-side name).
    const again = await small.client();
    assert.equal((await again.query({ name: 'x', text: 'SELECT $1::int + 0 AS v', values: [5] })).rows[0].v, 5);
    await again.end();
    await holder.end();
  } finally {
    await small.stop();
  }
});
