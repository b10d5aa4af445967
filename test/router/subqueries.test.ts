/**
 * Subqueries over a sharded table in a query that spans shards (issue 11 item 5): the shapes a
 * shard can evaluate row by row return exactly what one PostgreSQL database returns; the others
 * (aggregates, DISTINCT, LIMIT, window functions or set operations inside, and IN / EXISTS /
 * scalar subqueries) are refused with 0A000 naming the construct.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startShardedProxy } from '../harness/sharded.js';
import type { ProxyFixture } from '../harness/proxy.js';
import { shardOfValue } from '../../src/sharding/index.js';

const SCHEMA = `
  CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, amount numeric(10,2), status text, region text);
  CREATE TABLE regions (code text PRIMARY KEY, name text);`;
const SHARDED = `[[sharded_tables]]\ndatabase = "app"\nname = "orders"\ncolumn = "customer_id"\ndata_type = "bigint"\n\n[[omnisharded_tables]]\ndatabase = "app"\ntables = ["regions"]\n`;

let cluster: PgCluster;
let px: ProxyFixture;
let via: pg.Client;
let single: pg.Client;

before(async () => {
  cluster = await PgCluster.start();
  await cluster.createDatabase('single');
  await cluster.query(SCHEMA, [], 'single');
  px = await startShardedProxy(cluster, 2, SHARDED, '', SCHEMA);
  via = await px.client();
  single = await cluster.client('single');
  const rows = Array.from({ length: 1500 }, (_, k) => {
    const i = k + 1;
    return { id: i, customer: i % 37, amount: (i * 7) % 100 + 0.5, status: ['new', 'paid', 'sent'][i % 3], region: ['eu', 'us', 'ap'][i % 3] };
  });
  const insert = 'INSERT INTO orders (id, customer_id, amount, status, region) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::numeric[], $4::text[], $5::text[])';
  const cols = (rs: typeof rows) => [rs.map((r) => r.id), rs.map((r) => r.customer), rs.map((r) => r.amount), rs.map((r) => r.status), rs.map((r) => r.region)];
  const regions = "INSERT INTO regions (code, name) VALUES ('eu', 'Europe'), ('us', 'Americas'), ('ap', 'Asia')";
  await single.query(regions);
  await single.query(insert, cols(rows));
  await via.query(regions);
  // Each shard gets the rows whose key hashes to it (an INSERT … SELECT cannot be routed by pgshift).
  for (const s of [0, 1]) await cluster.query(insert, cols(rows.filter((r) => shardOfValue('bigint', String(r.customer), 2) === s)), `shard_${s}`);
});
after(async () => {
  await single?.end();
  await px?.stop();
  await cluster?.stop();
});

async function same(sql: string): Promise<void> {
  const [a, b] = await Promise.all([via.query(sql), single.query(sql)]);
  const norm = (r: pg.QueryResult) => r.rows.map((x) => JSON.stringify(x)).sort();
  assert.deepEqual(norm(a), norm(b), sql);
}

async function refusedWith(sql: string, construct: RegExp): Promise<void> {
  await assert.rejects(via.query(sql), (e: Error & { code?: string }) => {
    assert.equal(e.code, '0A000', `${sql}: ${e.message}`);
    assert.match(e.message, construct, sql);
    return true;
  });
}

test('row-by-row subqueries over a sharded table in a cross-shard query give exactly the single-database answer', async () => {
  await same('SELECT count(*) FROM orders');
  await same('SELECT count(*) FROM (SELECT * FROM orders WHERE amount > 50) s');
  await same("SELECT count(*), sum(amount), max(id) FROM (SELECT id, amount FROM orders WHERE status = 'paid' UNION ALL SELECT id, amount FROM orders WHERE status = 'new') s");
  await same("WITH paid AS (SELECT * FROM orders WHERE status = 'paid') SELECT count(*), min(amount) FROM paid");
  await same('SELECT s.region, count(*) FROM (SELECT o.region FROM orders o JOIN regions r ON r.code = o.region) s GROUP BY s.region ORDER BY s.region');
  // A subquery over the omnisharded table only is the same on every shard.
  await same("SELECT count(*) FROM orders WHERE region IN (SELECT code FROM regions WHERE name <> 'Asia')");
});

test('subqueries over a sharded table that a shard cannot answer alone are refused with 0A000 naming the construct', async () => {
  await refusedWith('SELECT count(*) FROM (SELECT DISTINCT customer_id FROM orders) s', /DISTINCT inside a subquery in FROM/);
  await refusedWith('SELECT count(*) FROM (SELECT customer_id FROM orders GROUP BY customer_id) s', /GROUP BY inside a subquery in FROM/);
  await refusedWith('SELECT sum(n) FROM (SELECT count(*) AS n FROM orders) s', /aggregate count\(\) inside a subquery in FROM/);
  await refusedWith('SELECT count(*) FROM (SELECT * FROM orders ORDER BY id LIMIT 10) s', /LIMIT\/OFFSET inside a subquery in FROM/);
  await refusedWith('SELECT count(*) FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM orders) s WHERE rn < 100', /window function row_number\(\) inside a subquery in FROM/);
  await refusedWith('SELECT count(*) FROM (SELECT customer_id FROM orders UNION SELECT customer_id FROM orders) s', /UNION inside a subquery in FROM/);
  await refusedWith('WITH c AS (SELECT customer_id, sum(amount) AS total FROM orders GROUP BY 1) SELECT count(*) FROM c', /GROUP BY inside WITH query "c"/);
  await refusedWith('WITH RECURSIVE r AS (SELECT id FROM orders WHERE id = 1 UNION ALL SELECT o.id FROM orders o JOIN r ON o.id = r.id + 1) SELECT count(*) FROM r', /WITH RECURSIVE|inside WITH query "r"/);
  await refusedWith('SELECT count(*) FROM orders WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 90)', /IN \/ = ANY \(SELECT …\)/);
  await refusedWith('SELECT count(*) FROM regions r WHERE EXISTS (SELECT 1 FROM orders o WHERE o.region = r.code)', /EXISTS/);
  await refusedWith('SELECT id, (SELECT max(amount) FROM orders) FROM orders', /scalar subquery/);
  await refusedWith('SELECT (SELECT count(*) FROM orders)', /scalar subquery/);
  await refusedWith("WITH p AS (SELECT * FROM orders WHERE status = 'paid') SELECT count(*) FROM regions WHERE code IN (SELECT region FROM p)", /IN \/ = ANY/);
  // The outer query's own DISTINCT / HAVING / window functions were refused before and still are.
  await refusedWith('SELECT DISTINCT status FROM orders', /DISTINCT/);
  await refusedWith('SELECT status FROM orders GROUP BY status HAVING count(*) > 1', /HAVING/);
  await refusedWith('SELECT id, rank() OVER (ORDER BY amount) FROM orders', /window function rank\(\)/);
});

test('a cross-shard UPDATE or DELETE with a subquery over a sharded table is refused and changes nothing; pinned to one shard it runs', async () => {
  const before = await via.query('SELECT count(*) AS n, sum(amount) AS s FROM orders');
  await refusedWith('DELETE FROM orders WHERE amount < (SELECT avg(amount) FROM orders)', /scalar subquery/);
  await refusedWith('UPDATE orders SET status = $$x$$ WHERE id IN (SELECT id FROM orders WHERE amount > 99)', /IN \/ = ANY/);
  assert.deepEqual((await via.query('SELECT count(*) AS n, sum(amount) AS s FROM orders')).rows, before.rows);
  // Pinned to one shard by the key, the subquery sees every row it can match (the customer's own).
  const r = await via.query('DELETE FROM orders WHERE customer_id = 5 AND amount > (SELECT min(amount) FROM orders WHERE customer_id = 5)');
  const d = await single.query('DELETE FROM orders WHERE customer_id = 5 AND amount > (SELECT min(amount) FROM orders WHERE customer_id = 5)');
  assert.equal(r.rowCount, d.rowCount);
  assert.ok((r.rowCount ?? 0) > 0);
});
