/**
 * Session features are written once (frontend/session.ts) for both bindings. These prove on a
 * SHARDED database what test/frontend/query-timeout.test.ts and limits.test.ts prove on one
 * shard: query_timeout, the idle timeouts and back-pressure (issue 12: they existed only in the
 * single-shard loop), and session pooling.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { RawConn, errorFields, assertEndsWithFatal, assertIdleClientClosed } from './raw.js';
import * as fe from '../../src/wire/frontend-messages.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SHARDS = 2;
const SHARDED = `[[sharded_tables]]\ndatabase = "app"\nname = "accounts"\ncolumn = "tenant_id"\ndata_type = "bigint"\n`;
const SCHEMA = 'CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id bigint NOT NULL, note text)';

let pg: PgCluster;
let databases = '';

before(async () => {
  pg = await PgCluster.start();
  for (let i = 0; i < SHARDS; i++) {
    await pg.createDatabase(`shard_${i}`);
    await pg.query(SCHEMA, [], `shard_${i}`);
    databases += `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${pg.port}\ndatabase_name = "shard_${i}"\nshard = ${i}\n\n`;
  }
});
after(async () => {
  await pg?.stop();
});

/** A pgshift serving "app" over the shards, with `general` settings. */
function sharded(general: string): Promise<ProxyFixture> {
  return startProxy(pg, { databases, general, extra: SHARDED });
}

test('sharded: query_timeout cancels a statement on one shard and one across shards with 57014; the connection stays usable', async () => {
  const px = await sharded('query_timeout = 300');
  try {
    const c = await px.client();
    await c.query('INSERT INTO accounts (tenant_id, note) VALUES (1, NULL), (2, $1)', ['x'.repeat(9000)]);
    for (const sql of ['SELECT pg_sleep(10) FROM accounts WHERE tenant_id = 1', 'SELECT count(*) FROM accounts WHERE pg_sleep(10) IS NOT NULL']) {
      const t0 = Date.now();
      await assert.rejects(c.query(sql), (e: { code?: string }) => e.code === '57014', sql);
      assert.ok(Date.now() - t0 < 5000, `${sql}: cancelled after ${Date.now() - t0} ms, not after the 10 s sleep`);
      assert.equal((await c.query('SELECT count(*) AS n FROM accounts')).rows[0].n, '2');
    }
    // Quick statements in a row are not affected.
    for (let i = 0; i < 10; i++) await c.query('SELECT pg_sleep(0.01) FROM accounts WHERE tenant_id = $1', [i]);
    await c.query('DELETE FROM accounts');
  } finally {
    await px.stop();
  }
});

test('sharded: client_idle_in_transaction_timeout ends idle transactions with FATAL 25P03 and frees their shard connections; client_idle_timeout closes idle clients with 57P05', async () => {
  const px = await sharded('default_pool_size = 2\nclient_idle_in_transaction_timeout = 400\nclient_idle_timeout = 1500');
  try {
    const holders = [await RawConn.connect(px.port), await RawConn.connect(px.port)];
    for (const h of holders) {
      await h.login('app', 'secret', 'app');
      // Both shards joined: the transaction holds a server connection on each.
      h.write(fe.query('BEGIN; SELECT count(*) FROM accounts'));
      await h.until('Z');
    }
    const t0 = Date.now();
    const third = await px.client();
    assert.equal((await third.query('SELECT count(*) AS n FROM accounts')).rows[0].n, '0');
    assert.ok(Date.now() - t0 < 2000, `waited ${Date.now() - t0} ms for shard connections`);
    for (const h of holders) await assertEndsWithFatal(h, '25P03');
    // Active clients are touched by neither timeout.
    for (let i = 0; i < 4; i++) {
      await sleep(500);
      assert.equal((await third.query('SELECT count(*) AS n FROM accounts WHERE tenant_id = 7')).rows[0].n, '0');
    }
    await third.end();
    await assertIdleClientClosed(px.port, 1400);
  } finally {
    await px.stop();
  }
});

test('sharded: a client that does not read a large result is not sent more than its socket takes (back-pressure), and then gets all of it', async () => {
  const px = await sharded('');
  try {
    const c = await RawConn.connect(px.port);
    await c.login('app', 'secret', 'app');
    const s = c.socket;
    s.removeAllListeners('data');
    s.pause();
    const rows = 40_000; // 40 MB of DataRow from one shard
    c.write(fe.query(`/* pgshift_shard: 1 */ SELECT repeat('x', 1000) AS v FROM generate_series(1, ${rows})`));
    await sleep(2500);
    const info = px.proxy.clients().find((x) => x.port === s.localPort);
    assert.ok(info, 'the client is registered');
    // Without back-pressure pgshift read the whole result from the shard and buffered it for the client.
    assert.ok(info.stats.bytesSent < 16_000_000, `pgshift buffered ${info.stats.bytesSent} bytes for a client that reads nothing`);
    let got = 0;
    let tail = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      got += d.length;
      tail = Buffer.concat([tail, d]).subarray(-64);
    });
    s.resume();
    const deadline = Date.now() + 20_000;
    while (!(tail.length >= 6 && tail[tail.length - 6] === 0x5a) && Date.now() < deadline) await sleep(50);
    assert.ok(got > rows * 1000, `received ${got} bytes`);
    assert.equal(tail[tail.length - 6], 0x5a, 'the result ends with ReadyForQuery');
    c.destroy();
  } finally {
    await px.stop();
  }
});

test('sharded, session pooling: the client keeps its shard connections between transactions, and they are reset before the next client gets them', async () => {
  const px = await sharded('pooler_mode = "session"\ndefault_pool_size = 1');
  try {
    const a = await px.client();
    const pid = async (c: typeof a) => (await c.query('/* pgshift_shard: 0 */ SELECT pg_backend_pid() AS p')).rows[0].p as number;
    const first = await pid(a);
    await a.query('SET application_name = $$sticky$$');
    await a.query('BEGIN');
    await a.query('INSERT INTO accounts (tenant_id) VALUES (1), (2)');
    assert.equal(await pid(a), first, 'the same shard connection inside a transaction');
    await a.query('ROLLBACK');
    for (let i = 0; i < 3; i++) assert.equal(await pid(a), first, 'the same shard connection between transactions');
    assert.equal((await a.query('SELECT count(*) AS n FROM accounts')).rows[0].n, '0', 'the rollback reached both shards');
    await a.query('BEGIN');
    await a.query('INSERT INTO accounts (tenant_id) VALUES (1), (2)');
    await a.query('COMMIT');
    assert.equal((await a.query('SELECT count(*) AS n FROM accounts')).rows[0].n, '2', 'the commit reached both shards');
    await a.query('DELETE FROM accounts');
    await a.end();
    // Pool of one per shard: the next client gets the same server, reset.
    const b = await px.client();
    assert.equal(await pid(b), first);
    assert.notEqual((await b.query("/* pgshift_shard: 0 */ SELECT current_setting('application_name') AS v")).rows[0].v, 'sticky');
    await b.end();
  } finally {
    await px.stop();
  }
});

test('a connected client follows its database from several shards to one and back (RELOAD), keeping its prepared statements, and is served directly while there is one shard', async () => {
  const px = await sharded('');
  try {
    const c = await px.client();
    const named = async () => (await c.query({ name: 'where', text: 'SELECT current_database() AS db, $1::int AS v', values: [7] })).rows[0];
    assert.match((await named()).db, /^shard_[01]$/);
    const toml = readFileSync(px.configPath, 'utf8');
    const oneShard = databases.slice(0, databases.indexOf('[[databases]]', 1));
    writeFileSync(px.configPath, toml.replace(databases, oneShard));
    await px.admin('RELOAD');
    for (let i = 0; i < 3; i++) assert.deepEqual(await named(), { db: 'shard_0', v: 7 }, 'served by the one shard, the statement still known');
    // Served by the direct binding: PostgreSQL answers PREPARE TRANSACTION itself (outside a
    // transaction, with a warning), where the multi-shard binding refuses it with 0A000.
    await assert.doesNotReject(c.query("PREPARE TRANSACTION 'x'"));
    writeFileSync(px.configPath, toml);
    await px.admin('RELOAD');
    assert.equal((await named()).v, 7, 'back on several shards, the statement still known');
    assert.equal((await c.query('SELECT count(*) AS n FROM accounts')).rows[0].n, '0');
  } finally {
    await px.stop();
  }
});

test('a client between Parse/Describe/Flush and its Bind (postgres.js) is not moved to the direct binding when its database returns to one shard: the Bind finds its unnamed statement', async () => {
  const px = await sharded('');
  try {
    const c = await RawConn.connect(px.port);
    await c.login('app', 'secret', 'app');
    c.write(Buffer.concat([fe.parse('', 'SELECT $1::int + 1 AS v', [23]), fe.describe('S', ''), fe.flush()]));
    assert.deepEqual((await c.until('T')).map((m) => m.type), ['1', 't', 'T']);
    const toml = readFileSync(px.configPath, 'utf8');
    writeFileSync(px.configPath, toml.replace(databases, databases.slice(0, databases.indexOf('[[databases]]', 1))));
    await px.admin('RELOAD');
    c.write(Buffer.concat([fe.bind('', '', [Buffer.from('41')]), fe.execute(''), fe.sync()]));
    const reply = await c.until('Z');
    const error = reply.find((m) => m.type === 'E');
    assert.equal(error, undefined, error && JSON.stringify(errorFields(error)));
    const row = reply.find((m) => m.type === 'D');
    assert.ok(row, 'a DataRow');
    assert.equal(row.body.subarray(6).toString(), '42');
    // After the Sync the session moves: served directly by the one shard.
    c.write(fe.query('SELECT current_database()'));
    assert.ok((await c.until('Z')).some((m) => m.type === 'D' && m.body.includes('shard_0')));
  } finally {
    await px.stop();
  }
});
