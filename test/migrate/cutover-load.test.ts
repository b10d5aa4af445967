/**
 * Issue 5's main proof: CUTOVER under continuous load through pgshift (1 → 2 shards), then a
 * rollback under load, then a cutover again. Clients see no error, every acknowledged write is on
 * the cluster that serves traffic afterwards, sequences continue without collision, and the
 * client-visible pause is printed (p50, p99, max).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, runPsql, type ProxyFixture } from '../harness/proxy.js';
import { freePort } from '../harness/pg-cluster.js';
import { shardOfValue } from '../../src/sharding/index.js';
import { prodDatabases, taskPolling } from './cutover-helpers.js';

let source: PgCluster;
let dest: PgCluster;
let px: ProxyFixture;
let httpPort = 0;

const SCHEMA = `
  CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, amount numeric(12,2) NOT NULL, note text);
  CREATE TABLE events (id bigserial PRIMARY KEY, note text NOT NULL);`;

before(async () => {
  source = await PgCluster.start();
  dest = await PgCluster.start();
  await source.createDatabase('shop');
  await source.query(SCHEMA, [], 'shop');
  await source.query(`INSERT INTO orders SELECT g, g % 50, g * 1.5, 'seed ' || g FROM generate_series(1, 2000) g;
    INSERT INTO events (note) SELECT 'seed ' || g FROM generate_series(1, 100) g;
    CREATE PUBLICATION pub FOR TABLE orders, events;`, [], 'shop');
  for (const d of ['shop_0', 'shop_1']) await dest.createDatabase(d);
  httpPort = await freePort();
  const databases = `
[[databases]]
name = "prod"
host = "127.0.0.1"
port = ${source.port}
database_name = "shop"

[[databases]]
name = "prod_new"
host = "127.0.0.1"
port = ${dest.port}
database_name = "shop_0"
shard = 0

[[databases]]
name = "prod_new"
host = "127.0.0.1"
port = ${dest.port}
database_name = "shop_1"
shard = 1
`;
  const users = ['prod', 'prod_new']
    .flatMap((db) => [
      `[[users]]\nname = "app"\ndatabase = "${db}"\npassword = "secret"\nserver_user = "postgres"\nserver_password = "postgres"\n`,
      `[[users]]\nname = "sess"\ndatabase = "${db}"\npassword = "secret"\nserver_user = "postgres"\nserver_password = "postgres"\npooler_mode = "session"\n`,
    ])
    .join('\n');
  px = await startProxy(source, {
    databases,
    users,
    general: `http_port = ${httpPort}\ndefault_pool_size = 8\ncutover_timeout = 20000\ncutover_grace_period = 3000\ncutover_traffic_stop_threshold = 100000000`,
    extra: `[[sharded_tables]]\ndatabase = "prod_new"\nname = "orders"\ncolumn = "id"\ndata_type = "bigint"\n`,
  });
});

after(async () => {
  await px?.stop();
  await source?.stop();
  await dest?.stop();
});

const { admin, waitFor, taskRow } = taskPolling(() => px, 60_000, 100);

interface LoadResult {
  errors: string[];
  acked: number[];
  events: number[];
  latencies: { at: number; ms: number }[];
}

/** Several clients writing and reading through pgshift until `stop` is set. */
function startLoad(clients: number, idBase: number): { stop: () => Promise<LoadResult> } {
  let running = true;
  const res: LoadResult = { errors: [], acked: [], events: [], latencies: [] };
  const workers = Array.from({ length: clients }, async (_, w) => {
    const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: 'app', password: 'secret', database: 'prod' });
    c.on('error', (e) => res.errors.push(`client error: ${e.message}`));
    await c.connect();
    let n = 0;
    try {
      while (running) {
        const id = idBase + w * 100_000 + n++;
        const t0 = Date.now();
        try {
          await c.query('INSERT INTO orders (id, customer, amount, note) VALUES ($1, $2, $3, $4)', [id, w, (n * 0.25).toFixed(2), `w${w}`]);
          res.acked.push(id);
          const r = await c.query('SELECT amount FROM orders WHERE id = $1', [id]);
          if (r.rows.length !== 1) res.errors.push(`read-your-writes failed for id ${id}`);
          await c.query('UPDATE orders SET amount = amount + 1 WHERE id = $1', [id]);
          if (n % 5 === 0) {
            const e = await c.query('INSERT INTO events (note) VALUES ($1) RETURNING id', [`w${w} n${n}`]);
            res.events.push(Number(e.rows[0].id));
          }
        } catch (err) {
          res.errors.push(`${(err as Error).message}`);
        }
        res.latencies.push({ at: t0, ms: Date.now() - t0 });
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return res;
    },
  };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

async function rowsOn(cluster: PgCluster, dbs: string[], sql: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const d of dbs) out.push(...(await cluster.query(sql, [], d)));
  return out;
}

async function runCutover(label: string, taskId: number, idBase: number): Promise<{ reverse: number; load: LoadResult; pauseMs: number }> {
  const load = startLoad(6, idBase);
  await new Promise((r) => setTimeout(r, 800));
  const r = (await admin(`CUTOVER ${taskId}`))[0];
  assert.equal(r.cutover, 'OK');
  await new Promise((r2) => setTimeout(r2, 800));
  const res = await load.stop();
  const lat = res.latencies.map((l) => l.ms);
  const prog = await (await fetch(`http://127.0.0.1:${httpPort}/progress`)).json();
  console.log(`${label}: steps ${JSON.stringify(prog.lastCutover?.steps)}`);
  console.log(`${label}: server-side pause ${r.pause_ms} ms; client request latency p50 ${percentile(lat, 50)} ms, p99 ${percentile(lat, 99)} ms, max ${Math.max(...lat)} ms over ${lat.length} requests; errors ${res.errors.length}`);
  assert.deepEqual(res.errors, [], `${label}: clients saw no error`);
  assert.ok(res.acked.length > 50, `${label}: the load ran (${res.acked.length} writes)`);
  return { reverse: Number(r.reverse_task_id), load: res, pauseMs: Number(r.pause_ms) };
}

test('CUTOVER under load moves traffic to the 2-shard cluster with no client error and no lost write', async () => {
  const started = await admin('COPY_DATA prod prod_new pub');
  const taskId = Number(started[0].task_id);
  await waitFor('the copy to finish and replication to start', async () => (await taskRow(taskId))?.inner_status === 'replicating');

  const progress = await (await fetch(`http://127.0.0.1:${httpPort}/progress`)).json();
  const t = progress.tasks.find((x: { id: number }) => x.id === taskId);
  assert.equal(t.canCutover, true, 'the progress API says the task can be cut over');
  assert.equal(progress.canWrite, true);

  // A session-mode client connected before the cutover keeps its connection.
  const sess = new pg.Client({ host: '127.0.0.1', port: px.port, user: 'sess', password: 'secret', database: 'prod' });
  await sess.connect();
  assert.equal((await sess.query('SELECT current_database() AS db')).rows[0].db, 'shop');

  const first = await runCutover('cutover', taskId, 1_000_000);

  // ... and its next transaction runs on the new cluster, routed by shard key.
  await sess.query('INSERT INTO orders (id, customer, amount) VALUES ($1, 1, 1)', [9_000_001]);
  assert.match((await sess.query('SELECT current_database() AS db')).rows[0].db, /^shop_[01]$/, 'the session client moved to the new cluster');
  const sessShard = `shop_${shardOfValue('bigint', '9000001', 2)}`;
  assert.equal((await dest.query('SELECT count(*)::int AS n FROM orders WHERE id = 9000001', [], sessShard))[0].n, 1);
  await sess.query('DELETE FROM orders WHERE id = $1', [9_000_001]);
  await sess.end();

  // Every acknowledged write is on the new cluster, on the shard its key hashes to.
  const onNew = await rowsOn(dest, ['shop_0', 'shop_1'], 'SELECT id::text AS id, current_database() AS db FROM orders');
  const where = new Map(onNew.map((r) => [String(r.id), String(r.db)]));
  for (const id of first.load.acked) {
    const db = where.get(String(id));
    assert.ok(db, `acknowledged order ${id} is on the new cluster`);
    assert.equal(db, `shop_${shardOfValue('bigint', String(id), 2)}`, `order ${id} is on its shard`);
  }
  assert.equal(onNew.length, new Set(onNew.map((r) => r.id)).size, 'no order doubled');
  assert.equal(onNew.length, 2000 + first.load.acked.length, 'seed rows + acknowledged writes, nothing else');
  // Sequences continued without collision: every event id the clients got is unique.
  assert.equal(new Set(first.load.events).size, first.load.events.length);

  // The swap is visible to admin and the forward task is finished.
  assert.equal((await taskRow(taskId))?.status, 'finished');
  const progress2 = await (await fetch(`http://127.0.0.1:${httpPort}/progress`)).json();
  assert.equal(progress2.lastCutover.taskId, taskId);
  assert.equal(typeof progress2.lastCutover.pauseMs, 'number');
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  assert.match(metrics, /pgshift_cutover_pause_seconds \d/);

  // Rollback under load: the reverse task brings traffic back to the old cluster.
  await waitFor('the reverse task to replicate', async () => (await taskRow(first.reverse))?.inner_status === 'replicating');
  const back = await runCutover('rollback', first.reverse, 2_000_000);
  const onOld = await source.query<{ id: string }>('SELECT id::text AS id FROM orders', [], 'shop');
  const oldIds = new Set(onOld.map((r) => r.id));
  for (const id of [...first.load.acked, ...back.load.acked]) assert.ok(oldIds.has(String(id)), `acknowledged order ${id} is on the old cluster after the rollback`);
  assert.equal(onOld.length, oldIds.size, 'no order doubled on the old cluster');
  assert.equal(onOld.length, 2000 + first.load.acked.length + back.load.acked.length);

  // And forward again.
  await waitFor('the new forward task to replicate', async () => (await taskRow(back.reverse))?.inner_status === 'replicating');
  const again = await runCutover('cutover again', back.reverse, 3_000_000);
  const final = await rowsOn(dest, ['shop_0', 'shop_1'], 'SELECT id::text AS id FROM orders');
  const finalIds = new Set(final.map((r) => String(r.id)));
  for (const id of [...first.load.acked, ...back.load.acked, ...again.load.acked]) assert.ok(finalIds.has(String(id)), `order ${id} is on the new cluster at the end`);
  assert.equal(final.length, finalIds.size);
  const allEvents = [...first.load.events, ...back.load.events, ...again.load.events];
  assert.equal(new Set(allEvents).size, allEvents.length, 'event ids never collided across cutovers');
});

test('RELOAD after a cutover does not move traffic back', async () => {
  await admin('RELOAD');
  const c = await new pg.Client({ host: '127.0.0.1', port: px.port, user: 'app', password: 'secret', database: 'prod' });
  await c.connect();
  try {
    const r = await c.query('SELECT current_database() AS db');
    assert.match(r.rows[0].db, /^shop_[01]$/, 'prod is still served by the new cluster');
  } finally {
    await c.end();
  }
  void runPsql;
});
