/**
 * Session settings on a sharded database in transaction mode (issue 11 item 4): what one client
 * SETs stays with that client; the next client of the same server connections sees the
 * defaults, on every shard; a SET undone by ROLLBACK is undone for the client too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { withShardedProxy } from '../harness/sharded.js';

const SCHEMA = 'CREATE TABLE accounts (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL, name text)';
const SHARDED = '[[sharded_tables]]\ndatabase = "app"\nname = "accounts"\ncolumn = "tenant_id"\ndata_type = "bigint"\n';

// One server connection per shard: client B necessarily gets the connections client A used.
const f = withShardedProxy(2, SHARDED, 'default_pool_size = 1', SCHEMA);

async function settings(c: pg.Client, shard: number): Promise<[string, string]> {
  const t = await c.query(`/* pgshift_shard: ${shard} */ SELECT current_setting('statement_timeout') AS t, current_setting('search_path') AS p`);
  return [t.rows[0].t, t.rows[0].p];
}

test("a client's SET statement_timeout and search_path are not seen by the next client on any shard", async () => {
  const b0 = await f.px.client();
  const defaults = [await settings(b0, 0), await settings(b0, 1)];
  await b0.end();
  const a = await f.px.client();
  await a.query("SET statement_timeout = '1234ms'");
  await a.query('SET search_path = customer_b, public');
  for (const s of [0, 1]) assert.deepEqual(await settings(a, s), ['1234ms', 'customer_b, public'], `client A on shard ${s}`);
  const b = await f.px.client();
  for (const s of [0, 1]) assert.deepEqual(await settings(b, s), defaults[s], `client B on shard ${s}`);
  // A still has its own settings after B used the connections.
  for (const s of [0, 1]) assert.deepEqual(await settings(a, s), ['1234ms', 'customer_b, public'], `client A again on shard ${s}`);
  await a.query('RESET ALL');
  for (const s of [0, 1]) assert.deepEqual(await settings(a, s), defaults[s], `client A after RESET ALL on shard ${s}`);
  await a.end();
  await b.end();
});

test('a SET inside a rolled-back transaction is undone for the client and leaks to no one', async () => {
  const a = await f.px.client();
  await a.query("SET statement_timeout = '2500ms'");
  await a.query('BEGIN');
  await a.query("SET statement_timeout = '7s'");
  await a.query('SELECT count(*) FROM accounts'); // both shards join the transaction
  assert.deepEqual((await settings(a, 0))[0], '7s');
  await a.query('ROLLBACK');
  for (const s of [0, 1]) assert.equal((await settings(a, s))[0], '2500ms', `client A after ROLLBACK on shard ${s}`);
  const b = await f.px.client();
  for (const s of [0, 1]) assert.equal((await settings(b, s))[0], '0', `client B on shard ${s}`);
  await a.end();
  await b.end();
});
