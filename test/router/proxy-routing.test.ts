/** Routing features of the sharded proxy path, through real clients. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import copyStreams from 'pg-copy-streams';
import { PgCluster } from '../harness/pg-cluster.js';
import { startShardedProxy } from '../harness/sharded.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import { shardOfValue } from '../../src/sharding/index.js';

const SCHEMA = 'CREATE TABLE t (id bigint PRIMARY KEY, v text); CREATE TABLE ref (k text PRIMARY KEY, v text)';
const SHARDED = `[[sharded_tables]]\ndatabase = "app"\nname = "t"\ncolumn = "id"\ndata_type = "bigint"\n\n[[omnisharded_tables]]\ndatabase = "app"\ntables = ["ref"]\n`;

let cluster: PgCluster;
let px: ProxyFixture;
let c: pg.Client;

before(async () => {
  cluster = await PgCluster.start();
  px = await startShardedProxy(cluster, 2, SHARDED, 'two_phase_commit = true', SCHEMA);
  c = await px.client();
});
after(async () => {
  await px?.stop();
  await cluster?.stop();
});

async function onShard(shard: number, sql: string) {
  return cluster.query(sql, [], `shard_${shard}`);
}

test('a pgshift_shard comment hint and SET pgshift.shard send a query to the named shard', async () => {
  await onShard(0, "INSERT INTO t VALUES (-1000, 'only on shard 0')");
  await onShard(1, "INSERT INTO t VALUES (-1001, 'only on shard 1')");
  const a = await c.query('/* pgshift_shard: 1 */ SELECT v FROM t WHERE id < -999');
  assert.deepEqual(a.rows, [{ v: 'only on shard 1' }]);
  await c.query('SET pgshift.shard = 0');
  const b = await c.query('SELECT v FROM t WHERE id < -999');
  assert.deepEqual(b.rows, [{ v: 'only on shard 0' }]);
  await c.query('RESET pgshift.shard');
  const all = await c.query('SELECT v FROM t WHERE id < -999 ORDER BY v');
  assert.equal(all.rows.length, 2, 'without an override the query reaches both shards');
  await c.query('/* pgshift_shard: 0 */ DELETE FROM t WHERE id < -999');
  await c.query('/* pgshift_shard: 1 */ DELETE FROM t WHERE id < -999');
});

test('writes to an omnisharded table reach every shard and reads come from one', async () => {
  await c.query("INSERT INTO ref (k, v) VALUES ('a', 'x'), ('b', 'y')");
  for (const s of [0, 1]) assert.equal((await onShard(s, 'SELECT count(*)::int AS n FROM ref'))[0].n, 2);
  const r = await c.query('SELECT k FROM ref ORDER BY k');
  assert.deepEqual(r.rows, [{ k: 'a' }, { k: 'b' }]);
});

test('a multi-shard transaction commits with two-phase commit and leaves no prepared transaction behind', async () => {
  const ids = [1, 2, 3, 4, 5, 6];
  assert.ok(new Set(ids.map((i) => shardOfValue('bigint', String(i), 2))).size === 2, 'the keys span both shards');
  await c.query('BEGIN');
  for (const id of ids) await c.query('INSERT INTO t (id, v) VALUES ($1, $2)', [id, `v${id}`]);
  await c.query('COMMIT');
  for (const s of [0, 1]) {
    const rows = await onShard(s, 'SELECT id FROM t WHERE id BETWEEN 1 AND 6');
    assert.ok(rows.length > 0, `shard ${s} got its rows`);
    assert.equal((await onShard(s, 'SELECT count(*)::int AS n FROM pg_prepared_xacts'))[0].n, 0);
  }
  const total = await c.query('SELECT count(*) AS n FROM t WHERE id BETWEEN 1 AND 6');
  assert.equal(Number(total.rows[0].n), 6);
});

test('a rolled-back multi-shard transaction leaves nothing on any shard', async () => {
  await c.query('BEGIN');
  for (const id of [101, 102, 103, 104]) await c.query('INSERT INTO t (id, v) VALUES ($1, $2)', [id, 'rolled back']);
  await c.query('ROLLBACK');
  const n = await c.query("SELECT count(*) AS n FROM t WHERE v = 'rolled back'");
  assert.equal(Number(n.rows[0].n), 0);
});

test('COPY FROM STDIN in CSV and binary splits rows by shard key', async () => {
  const csv = Array.from({ length: 50 }, (_, i) => `${1000 + i},"csv, row ${i}"\n`).join('');
  await pipeline(Readable.from([csv]), c.query(copyStreams.from('COPY t (id, v) FROM STDIN (FORMAT csv)')));
  // Binary: produce the bytes with PostgreSQL itself, then load them through pgshift.
  const src = await cluster.client('postgres');
  await src.query("CREATE TEMP TABLE b AS SELECT g::bigint AS id, 'bin ' || g AS v FROM generate_series(2000, 2049) g");
  const chunks: Buffer[] = [];
  await pipeline(src.query(copyStreams.to('COPY b TO STDOUT (FORMAT binary)')), async function* (source: AsyncIterable<Buffer>) {
    for await (const ch of source) chunks.push(ch);
  });
  await src.end();
  await pipeline(Readable.from([Buffer.concat(chunks)]), c.query(copyStreams.from('COPY t (id, v) FROM STDIN (FORMAT binary)')));
  for (const s of [0, 1]) {
    const rows = await onShard(s, 'SELECT id::text AS id FROM t WHERE id >= 1000');
    for (const r of rows) assert.equal(shardOfValue('bigint', r.id as string, 2), s);
  }
  const n = await c.query('SELECT count(*) AS n FROM t WHERE id >= 1000');
  assert.equal(Number(n.rows[0].n), 100);
  const v = await c.query('SELECT v FROM t WHERE id = 1007');
  assert.equal(v.rows[0].v, 'csv, row 7');
});

test('constructs the router cannot run correctly get a clear 0A000 error naming them', async () => {
  await assert.rejects(c.query("INSERT INTO t (v) VALUES ('no key')"), (e: { code?: string; message: string }) => e.code === '0A000' && /shard key "id"/i.test(e.message));
  await assert.rejects(c.query('SELECT string_agg(v, \',\') FROM t'), (e: { code?: string; message: string }) => e.code === '0A000' && /string_agg/i.test(e.message));
  await assert.rejects(c.query('SELECT count(*)::int FROM t'), (e: { code?: string; message: string }) => e.code === '0A000' && /aggregate/i.test(e.message));
  // The connection is still usable afterwards.
  assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
});

test('read-only queries go to replicas and writes to the primary', async () => {
  const primary = await PgCluster.start();
  const replica = await PgCluster.start();
  try {
    // Two independent servers stand in for a primary and its replica so the test can tell which one answered.
    await primary.query("CREATE TABLE whoami (name text); INSERT INTO whoami VALUES ('primary')");
    await replica.query("CREATE TABLE whoami (name text); INSERT INTO whoami VALUES ('replica')");
    const fx = await startProxy(primary, {
      databases: `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${primary.port}\ndatabase_name = "postgres"\n\n[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${replica.port}\ndatabase_name = "postgres"\nrole = "replica"\n`,
      general: 'read_write_split = "exclude_primary"',
    });
    try {
      const k = await fx.client();
      assert.equal((await k.query('SELECT name FROM whoami')).rows[0].name, 'replica');
      assert.equal((await k.query('SELECT name FROM whoami WHERE name = $1', ['replica'])).rows[0].name, 'replica');
      await k.query("INSERT INTO whoami VALUES ('written')");
      assert.equal((await primary.query("SELECT count(*)::int AS n FROM whoami WHERE name = 'written'"))[0].n, 1);
      await k.query('BEGIN');
      assert.equal((await k.query('SELECT name FROM whoami LIMIT 1')).rows[0].name, 'primary', 'reads inside a transaction stay on the primary');
      await k.query('COMMIT');
    } finally {
      await fx.stop();
    }
  } finally {
    await primary.stop();
    await replica.stop();
  }
});
