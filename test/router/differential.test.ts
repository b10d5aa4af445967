/**
 * The differential test of issue 3: one generated workload runs through pgshift against a
 * 3-shard cluster and directly against one unsharded PostgreSQL database. Every result set
 * must be identical (same rows; same order where the query orders), and afterwards each shard
 * holds exactly the rows whose key hashes to it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import copyStreams from 'pg-copy-streams';
import { PgCluster } from '../harness/pg-cluster.js';
import { startShardedProxy } from '../harness/sharded.js';
import type { ProxyFixture } from '../harness/proxy.js';
import { shardOfValue } from '../../src/sharding/index.js';
import { rng } from '../harness/rng.js';

const SHARDS = 3;
const SCHEMA = `
  CREATE TABLE items (id bigint PRIMARY KEY, grp int NOT NULL, name text, price numeric(10,2), created timestamptz);
  CREATE TABLE people (email varchar(100) PRIMARY KEY, visits int NOT NULL DEFAULT 0);
  CREATE TABLE countries (code text PRIMARY KEY, name text);`;
const SHARDED = `
[[sharded_tables]]
database = "app"
name = "items"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "app"
name = "people"
column = "email"
data_type = "varchar"

[[omnisharded_tables]]
database = "app"
tables = ["countries"]
`;

let cluster: PgCluster;
let px: ProxyFixture;
let viaProxy: pg.Client;
let direct: pg.Client;


before(async () => {
  cluster = await PgCluster.start();
  await cluster.createDatabase('single');
  await cluster.query(SCHEMA, [], 'single');
  px = await startShardedProxy(cluster, SHARDS, SHARDED, 'default_pool_size = 4', SCHEMA);
  viaProxy = await px.client();
  direct = await cluster.client('single');
});

after(async () => {
  await direct?.end();
  await px?.stop();
  await cluster?.stop();
});

type Q = { text: string; values?: unknown[]; ordered: boolean };

async function both(q: Q): Promise<void> {
  const [a, b] = await Promise.allSettled([viaProxy.query(q.text, q.values), direct.query(q.text, q.values)]);
  if (a.status === 'rejected' || b.status === 'rejected') {
    assert.equal(a.status, b.status, `${q.text}: pgshift ${a.status === 'rejected' ? 'failed: ' + a.reason.message : 'succeeded'}, PostgreSQL ${b.status === 'rejected' ? 'failed: ' + (b as PromiseRejectedResult).reason.message : 'succeeded'}`);
    return;
  }
  const rowsA = a.value.rows.map((r) => JSON.stringify(r));
  const rowsB = b.value.rows.map((r) => JSON.stringify(r));
  if (!q.ordered) {
    rowsA.sort();
    rowsB.sort();
  }
  assert.deepEqual(rowsA, rowsB, `result of ${q.text} ${JSON.stringify(q.values ?? [])}`);
  assert.equal(a.value.rowCount, b.value.rowCount, `row count of ${q.text}`);
  assert.equal(a.value.command, b.value.command, `command of ${q.text}`);
}

test('a generated workload returns identical results through a 3-shard pgshift and on one PostgreSQL database', async () => {
  const r = rng(Number(process.env.PGSHIFT_TEST_SEED ?? 42));
  const int = (n: number) => Math.floor(r() * n);
  const ids = new Set<number>();
  const emails = new Set<string>();
  for (const c of ['fr', 'de', 'jp']) await both({ text: 'INSERT INTO countries (code, name) VALUES ($1, $2)', values: [c, c.toUpperCase()], ordered: false });
  for (let step = 0; step < 400; step++) {
    const op = int(16);
    const id = int(5000) - 100; // includes negative keys
    const email = `user${int(300)}@example.${['com', 'org', 'jp'][int(3)]}`;
    switch (op) {
      case 0:
      case 1:
        if (!ids.has(id)) {
          ids.add(id);
          await both({ text: 'INSERT INTO items (id, grp, name, price, created) VALUES ($1, $2, $3, $4, $5)', values: [id, int(5), `item ${id} ✓`, (int(100000) / 100).toFixed(2), new Date(1700000000000 + int(1e9)).toISOString()], ordered: false });
        }
        break;
      case 2: {
        const rows = [int(5000) + 10000, int(5000) + 20000, int(5000) + 30000].filter((x) => !ids.has(x));
        if (rows.length) {
          rows.forEach((x) => ids.add(x));
          await both({ text: `INSERT INTO items (id, grp, name, price) VALUES ${rows.map((x) => `(${x}, ${x % 5}, 'multi ${x}', ${x % 997}.5)`).join(', ')}`, ordered: false });
        }
        break;
      }
      case 3:
        await both({ text: 'SELECT id, grp, name, price FROM items WHERE id = $1', values: [id], ordered: true });
        break;
      case 4:
        await both({ text: `SELECT * FROM items WHERE id IN (${id}, ${id + 1}, ${id + 2}) ORDER BY id`, ordered: true });
        break;
      case 5:
        await both({ text: 'UPDATE items SET price = price + 1, name = $2 WHERE id = $1', values: [id, `upd ${step}`], ordered: false });
        break;
      case 6:
        if (int(3) === 0) {
          ids.delete(id);
          await both({ text: 'DELETE FROM items WHERE id = $1', values: [id], ordered: false });
        }
        break;
      case 7:
        await both({ text: 'SELECT id, price FROM items WHERE price > $1 ORDER BY price DESC, id LIMIT 7 OFFSET 2', values: [int(900)], ordered: true });
        break;
      case 8:
        await both({ text: 'SELECT grp, count(*), sum(price), min(id), max(id) FROM items GROUP BY grp ORDER BY grp', ordered: true });
        break;
      case 9:
        if (!emails.has(email)) {
          emails.add(email);
          await both({ text: 'INSERT INTO people (email, visits) VALUES ($1, 1)', values: [email], ordered: false });
        } else await both({ text: `UPDATE people SET visits = visits + 1 WHERE email = '${email}'`, ordered: false });
        break;
      case 10:
        await both({ text: 'SELECT email, visits FROM people WHERE email = $1', values: [email], ordered: true });
        break;
      case 11: {
        // A transaction touching several shards, committed on all of them.
        const a = int(5000);
        const b = int(5000);
        for (const c of [viaProxy, direct]) {
          await c.query('BEGIN');
          await c.query('UPDATE items SET grp = 4 WHERE id = $1', [a]);
          await c.query('UPDATE items SET grp = 3 WHERE id = $1', [b]);
          await c.query('COMMIT');
        }
        break;
      }
      case 12: {
        // A transaction rolled back everywhere, with an error in the middle.
        for (const c of [viaProxy, direct]) {
          await c.query('BEGIN');
          await c.query('UPDATE items SET name = $2 WHERE id = $1', [id, 'never']);
          await assert.rejects(c.query('SELECT 1/0 FROM items WHERE id = $1', [int(5000)]).then((res) => {
            if (res.rowCount === 0) throw new Error('division by zero'); // no row on that key: no error either way
          }));
          await c.query('ROLLBACK');
        }
        break;
      }
      case 13:
        await both({ text: 'SELECT c.name, count(*) FROM countries c GROUP BY c.name ORDER BY c.name', ordered: true });
        break;
      case 14: {
        // Positional INSERT (no column list), one row with parameters or several literal rows.
        const rows = [int(5000) + 40000, int(5000) + 50000, int(5000) + 60000].filter((x) => !ids.has(x));
        if (!rows.length) break;
        rows.forEach((x) => ids.add(x));
        if (rows.length === 1 || int(2) === 0) {
          for (const x of rows) await both({ text: 'INSERT INTO items VALUES ($1, $2, $3)', values: [x, x % 5, `positional ${x}`], ordered: false });
        } else await both({ text: `INSERT INTO items VALUES ${rows.map((x) => `(${x}, ${x % 5}, 'positional ${x}', ${x % 991}.25)`).join(', ')}`, ordered: false });
        break;
      }
      case 15: {
        // A parameterized multi-row INSERT (ORM batch), split across shards over the extended protocol.
        const rows = [int(5000) + 70000, int(5000) + 80000, int(5000) + 90000, int(5000) + 95000].filter((x) => !ids.has(x));
        if (!rows.length) break;
        rows.forEach((x) => ids.add(x));
        const text = `INSERT INTO items (id, grp, name, price) VALUES ${rows.map((_, i) => `($${i * 4 + 1}, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4})`).join(', ')} RETURNING id, name`;
        await both({ text, values: rows.flatMap((x) => [x, x % 5, `batch ${x}`, (x % 997) + 0.5]), ordered: false });
        break;
      }
    }
  }
  // COPY in through pgshift, and the same rows directly.
  const copyRows = Array.from({ length: 300 }, (_, i) => `${100000 + i}\t${i % 5}\tcopied ${i}\t${i}.25\t\\N\n`).join('');
  for (const c of [viaProxy, direct]) {
    await pipeline(Readable.from([copyRows]), c.query(copyStreams.from('COPY items (id, grp, name, price, created) FROM STDIN')));
  }
  await both({ text: 'SELECT count(*), sum(price), min(id), max(id) FROM items', ordered: true });
  await both({ text: 'SELECT id, name FROM items ORDER BY id', ordered: true });
  await both({ text: 'SELECT email, visits FROM people ORDER BY email', ordered: true });
  await both({ text: 'SELECT grp, count(*) FROM items WHERE id > 0 GROUP BY grp ORDER BY grp', ordered: true });
});

test('after the workload every shard holds exactly the rows whose key hashes to it', async () => {
  let total = 0;
  for (let s = 0; s < SHARDS; s++) {
    const items = await cluster.query<{ id: string }>('SELECT id::text FROM items', [], `shard_${s}`);
    for (const row of items) assert.equal(shardOfValue('bigint', row.id, SHARDS), s, `items.id ${row.id} is on shard ${s}`);
    const people = await cluster.query<{ email: string }>('SELECT email FROM people', [], `shard_${s}`);
    for (const row of people) assert.equal(shardOfValue('varchar', row.email, SHARDS), s, `people.email ${row.email} is on shard ${s}`);
    const countries = await cluster.query<{ n: string }>('SELECT count(*)::text AS n FROM countries', [], `shard_${s}`);
    assert.equal(countries[0].n, '3', 'the omnisharded table is complete on every shard');
    total += items.length;
  }
  const single = await cluster.query<{ n: string }>('SELECT count(*)::text AS n FROM items', [], 'single');
  assert.equal(total, Number(single[0].n));
  assert.ok(total > 300, `the workload wrote rows (${total})`);
});
