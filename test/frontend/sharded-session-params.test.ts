/**
 * Transaction pooling on a sharded database: a client's SET belongs to that client. Another
 * client that gets the same server connections afterwards sees the defaults, and the client that
 * ran SET keeps its values on every shard.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import { PgCluster } from '../harness/pg-cluster.js';
import { startShardedProxy } from '../harness/sharded.js';
import type { ProxyFixture } from '../harness/proxy.js';

const SHARDS = 2;
const SCHEMA = `CREATE SCHEMA customer_b; CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner text NOT NULL);`;
const SHARDED = `[[sharded_tables]]\ndatabase = "app"\nname = "items"\ncolumn = "owner"\ndata_type = "text"\n`;

let cluster: PgCluster;
let px: ProxyFixture;

before(async () => {
  cluster = await PgCluster.start();
  // One server connection per shard: every client gets the same ones.
  px = await startShardedProxy(cluster, SHARDS, SHARDED, 'default_pool_size = 1\nmin_pool_size = 1', SCHEMA);
});
after(async () => {
  await px?.stop();
  await cluster?.stop();
});

async function settings(c: { query(sql: string): Promise<{ rows: Record<string, string>[] }> }): Promise<string[]> {
  const out: string[] = [];
  for (let s = 0; s < SHARDS; s++) {
    const r = await c.query(`/* pgshift_shard: ${s} */ SELECT current_setting('statement_timeout') AS st, current_setting('search_path') AS sp`);
    out.push(`${r.rows[0].st}|${r.rows[0].sp}`);
  }
  return out;
}

test('SET statement_timeout / search_path by one client of a sharded database is not seen by the next client on the same server connections', async () => {
  const probe = await px.client();
  const defaults = await settings(probe);
  for (const set of [`SET statement_timeout = '1234ms'`, `SET search_path = customer_b, public`]) {
    const a = await px.client();
    await a.query(set);
    // B is the very next user of the connections that ran A's SET.
    const b = await px.client();
    assert.deepEqual(await settings(b), defaults, `node-postgres client B does not see "${set}"`);
    assert.notDeepEqual(await settings(a), defaults, `client A keeps "${set}" on every shard`);
  }
  const a = await px.client();
  await a.query(`SET statement_timeout = '1234ms'`);
  await a.query(`SET search_path = customer_b, public`);
  const sql = postgres(px.url(), { max: 1, onnotice: () => undefined });
  try {
    const r: string[] = [];
    for (let s = 0; s < SHARDS; s++) {
      const [row] = await sql.unsafe(`/* pgshift_shard: ${s} */ SELECT current_setting('statement_timeout') AS st, current_setting('search_path') AS sp`);
      r.push(`${row.st}|${row.sp}`);
    }
    assert.deepEqual(r, defaults, 'postgres.js client C sees the defaults');
  } finally {
    await sql.end();
  }
  assert.deepEqual(await settings(a), ['1234ms|customer_b, public', '1234ms|customer_b, public'], 'client A keeps both settings on every shard');
  await a.query('RESET statement_timeout');
  await a.query('RESET search_path');
  assert.deepEqual(await settings(a), defaults);
  assert.deepEqual(await settings(probe), defaults);
});
