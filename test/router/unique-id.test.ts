/**
 * pgshift.unique_id() / pgdog.unique_id(): the generator (layout, monotonic, uniqueness, rate,
 * clock going backwards, NODE_ID) and the proxy rewrite (SELECT and INSERT … VALUES over both
 * protocols, rows routed by their new id, refusals where one id per call would be wrong).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { withShardedProxy } from '../harness/sharded.js';
import { shardOfValue } from '../../src/sharding/index.js';
import { UniqueIdGenerator, UNIQUE_ID_EPOCH_MS, decodeUniqueId, uniqueIdNode } from '../../src/router/unique-id.js';
import { parseConfig } from '../../src/config/load.js';

test('unique ids follow the documented layout, increase strictly and never repeat over 1,000,000 ids (generation rate printed)', async () => {
  const g = new UniqueIdGenerator(37);
  const t0 = Date.now();
  let prev = 0n;
  const n = 1_000_000;
  for (let i = 0; i < n; ) {
    const a = g.attempt();
    if ('error' in a) throw a.error;
    if (!('id' in a)) continue; // 4,096 this millisecond: try again in the next one
    const id = BigInt(a.id);
    if (id <= prev) assert.fail(`id ${i} ${id} after ${prev}`);
    prev = id;
    i++;
  }
  const ms = Date.now() - t0;
  const d = decodeUniqueId(prev);
  assert.equal(d.node, 37);
  assert.ok(Math.abs(d.ms - Date.now()) < 2000, 'the time field is the current time');
  assert.ok(prev > 0n && prev < 2n ** 63n);
  console.log(`# unique_id: ${n} ids in ${ms} ms (${Math.round((n / Math.max(ms, 1)) * 1000)} ids/s)`);
  // The async form used by the proxy hands out the same sequence.
  assert.ok(BigInt(await g.next()) > prev);
});

test('4,096 ids in one millisecond exhaust the sequence: the next waits for the next millisecond', () => {
  let now = UNIQUE_ID_EPOCH_MS + 5000;
  const g = new UniqueIdGenerator(1, () => now);
  const ids = new Set<string>();
  for (let i = 0; i < 4096; i++) {
    const a = g.attempt();
    assert.ok('id' in a);
    ids.add(a.id);
  }
  assert.equal(ids.size, 4096);
  assert.deepEqual(g.attempt(), { waitMs: 0 });
  now++;
  const a = g.attempt();
  assert.ok('id' in a && decodeUniqueId(BigInt(a.id)).sequence === 0 && decodeUniqueId(BigInt(a.id)).ms === now);
});

test('a clock that goes back is waited for up to one second and refused (55000) beyond, never repeating an id', () => {
  let now = UNIQUE_ID_EPOCH_MS + 100_000;
  const g = new UniqueIdGenerator(2, () => now);
  const first = g.attempt();
  assert.ok('id' in first);
  now -= 300;
  assert.deepEqual(g.attempt(), { waitMs: 300 });
  now -= 5000;
  const r = g.attempt();
  assert.ok('error' in r && r.error.code === '55000' && /clock went back by 5300 ms/.test(r.error.message));
  now += 5301;
  const later = g.attempt();
  assert.ok('id' in later && BigInt(later.id) > BigInt(first.id));
});

test('NODE_ID gives the node id as PgDog does (a name ending in -<number>), 0 when unset, an error when invalid', () => {
  assert.equal(uniqueIdNode({}), 0);
  assert.equal(uniqueIdNode({ NODE_ID: 'pgshift-prod-3' }), 3);
  assert.equal(uniqueIdNode({ NODE_ID: 'x-1023' }), 1023);
  assert.throws(() => uniqueIdNode({ NODE_ID: 'x-1024' }), /NODE_ID "x-1024" must end with -<number> between 0 and 1023/);
  assert.throws(() => uniqueIdNode({ NODE_ID: 'prod' }), /must end with -<number>/);
});

test('unique_id_min (PgDog\'s key) is accepted in [general]; ids are above it, and an id that would not be fails with 55000', () => {
  const c = parseConfig('[general]\nunique_id_min = 5_000_000\n[[databases]]\nname = "prod"\nhost = "127.0.0.1"\n', '', {}, {});
  assert.equal(c.general.unique_id_min, 5_000_000);
  assert.equal(parseConfig('[[databases]]\nname = "prod"\nhost = "127.0.0.1"\n', '', {}, {}).general.unique_id_min, 0);
  const now = UNIQUE_ID_EPOCH_MS + 10;
  const g = new UniqueIdGenerator(0, () => now);
  const ok = g.attempt(5_000_000);
  assert.ok('id' in ok && BigInt(ok.id) > 5_000_000n);
  const r = g.attempt(2 ** 52);
  assert.ok('error' in r && r.error.code === '55000' && /not above unique_id_min/.test(r.error.message));
});

const SCHEMA = 'CREATE TABLE events (id bigint PRIMARY KEY, account_id bigint, body text, created_at timestamptz DEFAULT now())';
const SHARDED = '[[sharded_tables]]\ndatabase = "app"\nname = "events"\ncolumn = "id"\ndata_type = "bigint"\n';
const f = withShardedProxy(3, SHARDED, '', SCHEMA);
let direct: pg.Client | undefined;
after(async () => {
  await direct?.end();
});

test('SELECT pgshift.unique_id() / pgdog.unique_id() / SHOW pgdog.unique_id through a 3-shard pgshift: a bigint column named like the one server with such a function, new ids each time', async () => {
  const c = await f.px.client();
  // One server where pgshift.unique_id() is a real function: the reference for names and types.
  await f.cluster.createDatabase('single');
  direct = await f.cluster.client('single');
  await direct.query('CREATE SCHEMA pgshift; CREATE SEQUENCE s; CREATE FUNCTION pgshift.unique_id() RETURNS bigint LANGUAGE sql AS $$ SELECT nextval(\'s\') $$');
  for (const sql of ['SELECT pgshift.unique_id()', 'SELECT pgshift.unique_id() AS a, pgshift.unique_id() + 0 AS b']) {
    const a: pg.QueryResult = await c.query(sql);
    const b: pg.QueryResult = await direct.query(sql);
    assert.deepEqual(a.fields.map((x) => [x.name, x.dataTypeID]), b.fields.map((x) => [x.name, x.dataTypeID]), sql);
    // Extended protocol (a named statement is described, then executed): same columns.
    const e: pg.QueryResult = await c.query({ text: sql, name: `u${sql.length}` });
    assert.deepEqual(e.fields.map((x) => [x.name, x.dataTypeID]), b.fields.map((x) => [x.name, x.dataTypeID]));
  }
  const ids: bigint[] = [];
  for (let i = 0; i < 5; i++) {
    ids.push(BigInt((await c.query('SELECT pgshift.unique_id()')).rows[0].unique_id));
    ids.push(BigInt((await c.query({ text: 'SELECT pgdog.unique_id()', name: 'pgdog_id' })).rows[0].unique_id));
    ids.push(BigInt((await c.query('SHOW pgdog.unique_id')).rows[0].unique_id));
  }
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], 'ids from one pgshift increase');
  const two = (await c.query('SELECT pgshift.unique_id() AS a, pgdog.unique_id() AS b')).rows[0];
  assert.notEqual(two.a, two.b, 'two calls in one statement are two ids');
});

test('INSERT … VALUES (pgshift.unique_id(), …) routes each row by its new id, over the simple and the extended protocol', async () => {
  const c = await f.px.client();
  await c.query("INSERT INTO events (id, account_id, body) VALUES (pgshift.unique_id(), 1, 'simple')");
  await c.query('INSERT INTO events (id, account_id, body) VALUES (pgshift.unique_id(), $1, $2), (pgdog.unique_id(), $1, $3), (pgshift.unique_id(), $1, $4)', [2, 'x', 'y', 'z']);
  for (let i = 0; i < 30; i++) await c.query({ text: 'INSERT INTO events (id, account_id, body) VALUES (pgshift.unique_id(), $1, $2)', values: [3, `row ${i}`], name: 'ins' });
  const seen = new Set<string>();
  const perShard = [0, 0, 0];
  for (let s = 0; s < 3; s++) {
    for (const r of await f.cluster.query<{ id: string }>('SELECT id::text FROM events', [], `shard_${s}`)) {
      assert.equal(shardOfValue('bigint', r.id, 3), s, `row ${r.id} is on the shard of its id`);
      assert.ok(!seen.has(r.id));
      seen.add(r.id);
      perShard[s]++;
    }
  }
  assert.equal(seen.size, 34);
  assert.ok(perShard.every((n) => n > 0), `rows spread over the shards: ${perShard}`);
  const back = await c.query("SELECT body FROM events WHERE body = 'simple'");
  assert.equal(back.rows.length, 1);
});

test('unique_id() where one id per call would be wrong (INSERT … SELECT, SELECT … FROM, a column DEFAULT) is refused with 0A000', async () => {
  const c = await f.px.client();
  for (const [sql, re] of [
    ["INSERT INTO events (id, body) SELECT pgshift.unique_id(), 'x' FROM generate_series(1, 3)", /INSERT … SELECT/],
    ['SELECT pgshift.unique_id(), id FROM events', /SELECT with FROM/],
    ['CREATE TABLE t2 (id bigint DEFAULT pgshift.unique_id() PRIMARY KEY)', /column default/],
    ["INSERT INTO events (id, body) VALUES ((SELECT pgshift.unique_id()), 'x')", /subquery/],
  ] as const) {
    await assert.rejects(c.query(sql), (e: { code?: string; message: string }) => e.code === '0A000' && re.test(e.message), sql);
  }
  assert.equal((await c.query('SELECT 1 AS ok')).rows[0].ok, 1);
});
