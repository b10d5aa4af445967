/**
 * INSERT without a column list into a sharded table (issue 9 defect 3): routed by the table's
 * column order from the shard catalog (generated columns keep their position, short rows fill
 * from the left), over the simple and extended protocols; a row that leaves the shard key to its
 * default is refused with a hint; a stale cached column order never places a row silently.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import { withShardedProxy } from '../harness/sharded.js';
import { shardOfValue } from '../../src/sharding/index.js';

// Shard key tenant_id is neither the primary key nor first, and a generated column precedes it.
const SCHEMA = `CREATE TABLE users (
  id bigserial PRIMARY KEY,
  email text NOT NULL,
  email_len int GENERATED ALWAYS AS (length(email)) STORED,
  tenant_id bigint,
  note text)`;
const SHARDED = '[[sharded_tables]]\ndatabase = "app"\nname = "users"\ncolumn = "tenant_id"\ndata_type = "bigint"\n';

// One server connection per shard: the column order must be read without a second checkout.
const f = withShardedProxy(2, SHARDED, 'default_pool_size = 1', SCHEMA);

const shardOf = (tenant: number) => shardOfValue('bigint', String(tenant), 2);

/** [shard, tenant_id] of the row with this id, on every shard that has it. */
async function tenantOf(id: number): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = [];
  for (const s of [0, 1]) {
    for (const r of await f.cluster.query<{ tenant_id: string }>('SELECT tenant_id FROM users WHERE id = $1', [id], `shard_${s}`)) out.push([s, Number(r.tenant_id)]);
  }
  return out;
}

/** The row with this id on each shard: [shard, tenant_id, email_len, note][]. */
async function whereIs(id: number): Promise<Array<[number, number, number, string | null]>> {
  const out: Array<[number, number, number, string | null]> = [];
  for (const s of [0, 1]) {
    const rows = await f.cluster.query<{ tenant_id: string; email_len: number; note: string | null }>('SELECT tenant_id, email_len, note FROM users WHERE id = $1', [id], `shard_${s}`);
    for (const r of rows) out.push([s, Number(r.tenant_id), r.email_len, r.note]);
  }
  return out;
}

test('a positional INSERT (simple protocol) lands on the shard of its key, with generated columns taking DEFAULT in place', async () => {
  const c = await f.px.client();
  const r = await c.query("INSERT INTO users VALUES (42, 'a@x.io', DEFAULT, 7, 'first')");
  assert.equal(r.rowCount, 1);
  assert.deepEqual(await whereIs(42), [[shardOf(7), 7, 6, 'first']]);
  // Fewer values than columns: PostgreSQL fills from the left, note stays NULL.
  await c.query("INSERT INTO users VALUES (43, 'bb@x.io', DEFAULT, 8)");
  assert.deepEqual(await whereIs(43), [[shardOf(8), 8, 7, null]]);
});

test('a multi-row positional INSERT with parameters is split by shard over the extended protocol (node-postgres and postgres.js)', async () => {
  const tenants = [1, 2, 3, 4];
  assert.equal(new Set(tenants.map(shardOf)).size, 2, 'the rows span both shards');
  const c = await f.px.client();
  const r = await c.query('INSERT INTO users VALUES ($1, $2, DEFAULT, $3), ($4, $5, DEFAULT, $6), ($7, $8, DEFAULT, $9), ($10, $11, DEFAULT, $12) RETURNING id, tenant_id', tenants.flatMap((t) => [100 + t, `u${t}@x.io`, t]));
  assert.equal(r.rowCount, 4);
  assert.deepEqual(r.rows.map((x) => Number(x.id)).sort(), [101, 102, 103, 104]);
  for (const t of tenants) assert.deepEqual(await whereIs(100 + t), [[shardOf(t), t, `u${t}@x.io`.length, null]]);
  const sql = postgres({ host: '127.0.0.1', port: f.px.port, user: 'app', password: 'secret', database: 'app', max: 1, onnotice: () => undefined });
  try {
    await sql.unsafe("INSERT INTO users VALUES ($1, $2, DEFAULT, $3, 'pjs'), ($4, $5, DEFAULT, $6, 'pjs')", [201, 'p1@x.io', 11, 202, 'p2@x.io', 12]);
  } finally {
    await sql.end();
  }
  assert.deepEqual(await whereIs(201), [[shardOf(11), 11, 7, 'pjs']]);
  assert.deepEqual(await whereIs(202), [[shardOf(12), 12, 7, 'pjs']]);
});

test('a positional INSERT that leaves the shard key to its default is refused with 0A000 and a hint naming the fix', async () => {
  const c = await f.px.client();
  for (const text of ["INSERT INTO users VALUES (50, 'short@x.io')", "INSERT INTO users VALUES (51, 'd@x.io', DEFAULT, DEFAULT)"]) {
    await assert.rejects(c.query(text), (e: Error & { code?: string; hint?: string }) => {
      assert.equal(e.code, '0A000', text);
      assert.match(e.message, /must give the shard key "tenant_id" a value/);
      assert.match(e.hint ?? '', /nextval/);
      return true;
    });
  }
  assert.deepEqual([...(await whereIs(50)), ...(await whereIs(51))], []);
});

test('after the table changes behind pgshift a positional INSERT errors or uses the new column order, never a stale one', async () => {
  const c = await f.px.client();
  await c.query("INSERT INTO users VALUES (60, 'warm@x.io', DEFAULT, 5)"); // caches the column order
  // Directly on the shards (pgshift does not see it): tenant_id moves to position 2.
  for (const s of [0, 1]) {
    await f.cluster.query('ALTER TABLE users DROP COLUMN email CASCADE; ALTER TABLE users ADD COLUMN email text; ALTER TABLE users ADD COLUMN email_len int', [], `shard_${s}`);
  }
  // Stale order would put tenant 9 in "email" and route by the fifth value: the added column list makes the shard refuse it.
  const text = "INSERT INTO users VALUES (61, 9, 'n', '13', 0)";
  await assert.rejects(c.query(text));
  assert.deepEqual(await tenantOf(61), [], 'no row was stored under the stale column order');
  // The failure dropped the cache: the retry reads the new order and routes by tenant 9.
  await c.query(text);
  assert.deepEqual(await tenantOf(61), [[shardOf(9), 9]]);
  // A short row that misses the key under the old order refreshes the order instead of refusing.
  await c.query('ALTER TABLE users DROP COLUMN note'); // through pgshift: every shard, cache dropped
  await c.query('INSERT INTO users VALUES (62, 21)');
  assert.deepEqual(await tenantOf(62), [[shardOf(21), 21]]);
});

test('RELOAD empties the column-order cache', async () => {
  const c = await f.px.client();
  await c.query('INSERT INTO users VALUES (70, 22)');
  for (const s of [0, 1]) await f.cluster.query('ALTER TABLE users ADD COLUMN pad int; ALTER TABLE users DROP COLUMN tenant_id; ALTER TABLE users ADD COLUMN tenant_id bigint', [], `shard_${s}`);
  await f.px.admin('RELOAD');
  // New order: id, email, email_len, pad, tenant_id. Only a reloaded order routes this row.
  await c.query("INSERT INTO users VALUES (71, 'r@x.io', 1, 0, 23)");
  assert.deepEqual(await tenantOf(71), [[shardOf(23), 23]]);
});

test('inside a transaction that holds the only connection of each shard, the column order is read on a held connection', { timeout: 15000 }, async () => {
  const c = await f.px.client();
  await c.query('ALTER TABLE users ADD COLUMN extra int'); // through pgshift: the cached order is dropped
  await c.query('BEGIN');
  await c.query('SELECT count(*) FROM users'); // both shards join the transaction
  await c.query("INSERT INTO users VALUES (80, 'tx@x.io', DEFAULT, 0, 31)");
  await c.query('COMMIT');
  assert.deepEqual(await tenantOf(80), [[shardOf(31), 31]]);
});
