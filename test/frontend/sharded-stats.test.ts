// Issue 12: on a sharded database SHOW STATS, SHOW SERVERS and pgshift_queries_total counted
// nothing (0 transactions, 0 queries), while the same counters worked on a single shard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withShardedProxy } from '../harness/sharded.js';
import { runPsqlTable } from '../harness/proxy.js';
import { createMetrics } from '../../src/observe/metrics.js';

const SHARDED = `[[sharded_tables]]\ndatabase = "app"\nname = "items"\ncolumn = "id"\ndata_type = "bigint"\n`;
const f = withShardedProxy(2, SHARDED, '', 'CREATE TABLE items (id bigint PRIMARY KEY, v text)');

function rowsOf(t: { columns: string[]; rows: string[][] }): Record<string, string>[] {
  return t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c, r[i]])));
}

test('a sharded database counts queries and transactions per shard in SHOW STATS, SHOW SERVERS and pgshift_queries_total', async () => {
  const c = await f.px.client();
  try {
    for (let id = 1; id <= 20; id++) await c.query('INSERT INTO items (id, v) VALUES ($1, $2)', [id, `v${id}`]);
    await c.query('SELECT count(*) FROM items'); // both shards
    await c.query('BEGIN');
    await c.query('SELECT v FROM items WHERE id = 1');
    await c.query('SELECT v FROM items WHERE id = 2');
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
  const stats = rowsOf(await runPsqlTable(f.px.adminUrl(), 'SHOW STATS'));
  const byShard = new Map(stats.filter((r) => r.database === 'app').map((r) => [r.shard, r]));
  assert.deepEqual([...byShard.keys()].sort(), ['0', '1'], JSON.stringify(stats));
  for (const [shard, r] of byShard) {
    assert.ok(Number(r.total_query_count) >= 5, `shard ${shard} total_query_count ${r.total_query_count}`);
    assert.ok(Number(r.total_xact_count) >= 5, `shard ${shard} total_xact_count ${r.total_xact_count}`);
  }
  const sum = (k: string) => [...byShard.values()].reduce((a, r) => a + Number(r[k]), 0);
  // 20 single-shard INSERTs + the count on both shards + 2 reads inside BEGIN (BEGIN/COMMIT are pgshift's).
  assert.ok(sum('total_query_count') >= 24, `queries over both shards: ${sum('total_query_count')}`);
  const servers = rowsOf(await runPsqlTable(f.px.adminUrl(), 'SHOW SERVERS'));
  const app = servers.filter((r) => r.database === 'app');
  assert.ok(app.reduce((a, r) => a + Number(r.transactions), 0) >= 10, `SHOW SERVERS transactions: ${JSON.stringify(app)}`);
  assert.ok(app.reduce((a, r) => a + Number(r.queries), 0) >= 24, `SHOW SERVERS queries: ${JSON.stringify(app)}`);
  const metrics = await createMetrics(f.px.proxy).metrics();
  for (const shard of ['0', '1']) {
    const m = new RegExp(`pgshift_queries_total\\{[^}]*database="app"[^}]*shard="${shard}"[^}]*\\} (\\d+)`).exec(metrics) ?? new RegExp(`pgshift_queries_total\\{[^}]*shard="${shard}"[^}]*database="app"[^}]*\\} (\\d+)`).exec(metrics);
    assert.ok(m && Number(m[1]) >= 5, `pgshift_queries_total for shard ${shard}: ${m?.[0] ?? 'missing'}`);
  }
});
