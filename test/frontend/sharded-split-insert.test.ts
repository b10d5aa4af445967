/**
 * Multi-row INSERTs split across shards over the extended protocol (issue 11 item 1): every row
 * lands on its shard with its own parameters, and a Bind that cannot be built never leaves a
 * broken server connection in the pool for the next client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import { withShardedProxy } from '../harness/sharded.js';
import { shardOfValue } from '../../src/sharding/index.js';

const SCHEMA = 'CREATE TABLE events (id bigserial PRIMARY KEY, user_id bigint NOT NULL, payload text)';
const SHARDED = '[[sharded_tables]]\ndatabase = "app"\nname = "events"\ncolumn = "user_id"\ndata_type = "bigint"\n';

// One server connection per shard, so the next client gets the same one.
const f = withShardedProxy(2, SHARDED, 'default_pool_size = 1', SCHEMA);

async function rowsOnShards(ids: number[]): Promise<Array<Array<[number, number]>>> {
  const out: Array<Array<[number, number]>> = [];
  for (const s of [0, 1]) {
    const rows = await f.cluster.query<{ id: string; user_id: string }>('SELECT id, user_id FROM events WHERE id = ANY($1) ORDER BY id', [ids], `shard_${s}`);
    out.push(rows.map((r) => [Number(r.id), Number(r.user_id)]));
  }
  return out;
}

function expected(rows: Array<[number, number]>): Array<Array<[number, number]>> {
  return [0, 1].map((s) => rows.filter(([, u]) => shardOfValue('bigint', String(u), 2) === s).sort((a, b) => a[0] - b[0]));
}

test('a parameterized multi-row INSERT across shards writes each row with its own values on its shard (node-postgres)', { timeout: 20000 }, async () => {
  const rows: Array<[number, number]> = [[301, 1], [302, 2], [303, 3], [304, 4]];
  assert.equal(new Set(rows.map(([, u]) => shardOfValue('bigint', String(u), 2))).size, 2, 'the rows span both shards');
  const c = await f.px.client();
  const r = await c.query('INSERT INTO events (id, user_id) VALUES ($1,$2),($3,$4),($5,$6),($7,$8)', rows.flat());
  assert.equal(r.rowCount, 4);
  assert.deepEqual(await rowsOnShards(rows.map(([id]) => id)), expected(rows));
  const ret = await c.query('INSERT INTO events (id, user_id, payload) VALUES ($1,$2,$9),($3,$4,$9),($5,$6,$9),($7,$8,$9) RETURNING id, user_id, payload', [...[[311, 5], [312, 6], [313, 7], [314, 8]].flat(), 'shared']);
  assert.deepEqual(ret.rows.map((x) => [Number(x.id), Number(x.user_id), x.payload]).sort((a, b) => (a[0] as number) - (b[0] as number)), [[311, 5, 'shared'], [312, 6, 'shared'], [313, 7, 'shared'], [314, 8, 'shared']]);
  assert.deepEqual(await rowsOnShards([311, 312, 313, 314]), expected([[311, 5], [312, 6], [313, 7], [314, 8]]));
});

test('a parameterized multi-row INSERT across shards writes each row with its own values on its shard (postgres.js)', { timeout: 20000 }, async () => {
  const sql = postgres({ host: '127.0.0.1', port: f.px.port, user: 'app', password: 'secret', database: 'app', max: 1, onnotice: () => undefined });
  try {
    const rows: Array<[number, number]> = [[401, 11], [402, 12], [403, 13], [404, 14], [405, 15]];
    const r = await sql.unsafe('INSERT INTO events (id, user_id) VALUES ($1,$2),($3,$4),($5,$6),($7,$8),($9,$10)', rows.flat());
    assert.equal(r.count, 5);
    assert.deepEqual(await rowsOnShards(rows.map(([id]) => id)), expected(rows));
    // The tagged-template form (a prepared statement, parameters typed by the server).
    const more = [{ id: 411, user_id: 21 }, { id: 412, user_id: 22 }, { id: 413, user_id: 23 }, { id: 414, user_id: 24 }];
    await sql`INSERT INTO events ${sql(more, 'id', 'user_id')}`;
    assert.deepEqual(await rowsOnShards(more.map((m) => m.id)), expected(more.map((m) => [m.id, m.user_id])));
  } finally {
    await sql.end();
  }
});

test('a split INSERT whose Bind lacks a parameter fails cleanly and the next client gets working connections', { timeout: 20000 }, async () => {
  const a = await f.px.client();
  await assert.rejects(a.query('INSERT INTO events (id, user_id, payload) VALUES ($1,$2,$5),($3,$4,$5)', [501, 1, 502, 3]), (e: Error & { code?: string }) => {
    assert.equal(e.code, '08P01');
    assert.match(e.message, /supplies 4 parameters/);
    return true;
  });
  await a.end();
  const b = await f.px.client();
  // Both shards (pool size 1: the very connections the failed INSERT used) answer correctly.
  const rows: Array<[number, number]> = [[511, 1], [512, 3]];
  const r = await b.query('INSERT INTO events (id, user_id) VALUES ($1,$2),($3,$4)', rows.flat());
  assert.equal(r.rowCount, 2);
  assert.deepEqual(await rowsOnShards([501, 502, 511, 512]), expected(rows));
  const n = await b.query('SELECT count(*) AS n FROM events WHERE id IN (511, 512)');
  assert.equal(Number(n.rows[0].n), 2);
});
