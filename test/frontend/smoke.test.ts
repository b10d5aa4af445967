import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';

let pg: PgCluster;
let px: ProxyFixture;
before(async () => {
  pg = await PgCluster.start();
  px = await startProxy(pg);
});
after(async () => {
  await px?.stop();
  await pg?.stop();
});

test('node-postgres runs simple and parameterized queries through pgshift', async () => {
  const c = await px.client();
  const r = await c.query('SELECT 1 AS one');
  assert.equal(r.rows[0].one, 1);
  const p = await c.query('SELECT $1::int + 1 AS two', [1]);
  assert.equal(p.rows[0].two, 2);
  const n = await c.query({ name: 'named', text: 'SELECT $1::text AS t', values: ['x'] });
  assert.equal(n.rows[0].t, 'x');
  const n2 = await c.query({ name: 'named', text: 'SELECT $1::text AS t', values: ['y'] });
  assert.equal(n2.rows[0].t, 'y');
});
