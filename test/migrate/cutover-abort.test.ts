/**
 * Issue 5's abort paths: a cutover that fails before the swap resumes traffic on the source with
 * nothing changed, whatever the cause — a failure at any step, a replication stall that makes
 * cutover_timeout fire, STOP_TASK while the barrier waits — and a transaction left open past
 * cutover_grace_period is ended with a clear error without failing the cutover. Real servers
 * (1-shard source, 2-shard destination), load through pgshift.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';
import type { CutoverStep } from '../../src/migrate/cutover/cutover.js';
import type { GeneralConfig } from '../../src/config/types.js';
import { prodDatabases, taskPolling } from './cutover-helpers.js';

let source: PgCluster;
let dest: PgCluster;
let px: ProxyFixture;
let taskId = 0;
/** Every write acknowledged to a load client, over all tests. */
const allAcked: number[] = [];

const SCHEMA = `
  CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, note text);
  CREATE TABLE events (id bigserial PRIMARY KEY, note text NOT NULL);`;

before(async () => {
  [source, dest] = await Promise.all([PgCluster.start(), PgCluster.start()]);
  await source.createDatabase('shop');
  await source.query(SCHEMA, [], 'shop');
  await source.query(`INSERT INTO orders SELECT g, g % 50, 'seed' FROM generate_series(1, 500) g;
    INSERT INTO events (note) SELECT 'seed' FROM generate_series(1, 50);
    CREATE PUBLICATION pub FOR TABLE orders, events;`, [], 'shop');
  for (const d of ['shop_0', 'shop_1']) await dest.createDatabase(d);
  const databases = prodDatabases(source.port, dest.port);
  const users = ['prod', 'prod_new'].map((db) => `[[users]]\nname = "app"\ndatabase = "${db}"\npassword = "secret"\nserver_user = "postgres"\nserver_password = "postgres"\n`).join('\n');
  px = await startProxy(source, {
    databases,
    users,
    general: 'default_pool_size = 8\ncutover_timeout = 20000\ncutover_grace_period = 3000\ncutover_traffic_stop_threshold = 100000000',
    extra: `[[sharded_tables]]\ndatabase = "prod_new"\nname = "orders"\ncolumn = "id"\ndata_type = "bigint"\n`,
  });
  taskId = Number((await admin('COPY_DATA prod prod_new pub'))[0].task_id);
  await waitFor('the copy to finish and replication to start', async () => (await taskRow(taskId))?.inner_status === 'replicating');
});

after(async () => {
  if (px) {
    // A failed assertion may have left load running or the gate closed: end both first.
    px.proxy.inject = undefined;
    px.proxy.gate.open();
    px.proxy.gate.open('prod');
    await Promise.all([...activeLoads].map((l) => l.stop()));
  }
  await px?.stop();
  await Promise.all([source?.stop(), dest?.stop()]);
});

const { admin, waitFor, taskRow } = taskPolling(() => px);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Changes [general] in memory, as RELOAD of an edited file would. */
function setGeneral(patch: Partial<GeneralConfig>): void {
  const c = px.proxy.currentConfig;
  px.proxy.applyConfig({ ...c, general: { ...c.general, ...patch } });
}

interface LoadResult {
  errors: string[];
  acked: number[];
  /** Physical database each acknowledged insert landed in. */
  landed: Set<string>;
  maxMs: number;
}

let nextIdBase = 1_000_000;
const activeLoads = new Set<{ stop: () => Promise<LoadResult> }>();

/** Clients inserting and reading back through pgshift until stopped. */
function startLoad(clients: number): { stop: () => Promise<LoadResult> } {
  const base = (nextIdBase += 1_000_000);
  let running = true;
  const res: LoadResult = { errors: [], acked: [], landed: new Set(), maxMs: 0 };
  const workers = Array.from({ length: clients }, async (_, w) => {
    const c = new pg.Client({ host: '127.0.0.1', port: px.port, user: 'app', password: 'secret', database: 'prod' });
    let broken = false;
    c.on('error', (e) => {
      res.errors.push(`client error: ${e.message}`);
      broken = true;
    });
    await c.connect();
    try {
      for (let n = 0; running && !broken; n++) {
        const id = base + w * 100_000 + n;
        const t0 = Date.now();
        try {
          const r = await c.query('INSERT INTO orders (id, customer, note) VALUES ($1, $2, $3) RETURNING current_database() AS db', [id, w, `w${w}`]);
          res.acked.push(id);
          allAcked.push(id);
          res.landed.add(r.rows[0].db);
          const back = await c.query('SELECT note FROM orders WHERE id = $1', [id]);
          if (back.rows.length !== 1) res.errors.push(`read-your-writes failed for ${id}`);
          if (n % 4 === 0) await c.query('INSERT INTO events (note) VALUES ($1)', [`w${w}`]);
        } catch (err) {
          res.errors.push((err as Error).message);
        }
        res.maxMs = Math.max(res.maxMs, Date.now() - t0);
      }
    } finally {
      await c.end().catch(() => undefined);
    }
  });
  const load = {
    async stop() {
      running = false;
      activeLoads.delete(load);
      await Promise.all(workers);
      return res;
    },
  };
  activeLoads.add(load);
  return load;
}

async function destSlots(): Promise<string[]> {
  return (await dest.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots ORDER BY 1')).map((r) => r.slot_name);
}

async function destPublications(): Promise<string[]> {
  const out: string[] = [];
  for (const d of ['shop_0', 'shop_1']) out.push(...(await dest.query<{ p: string }>('SELECT pubname AS p FROM pg_publication', [], d)).map((r) => `${d}.${r.p}`));
  return out.sort();
}

/** Opens a transaction holding ACCESS EXCLUSIVE on orders: replication into it stalls. */
async function lockOrders(cluster: PgCluster, db: string): Promise<pg.Client> {
  const c = await cluster.client(db);
  await c.query('BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
  return c;
}

/**
 * Locks orders on both destination shards. The applier may hold one shard's transaction open
 * while it waits for the other shard: a lock taken there would wait forever on a transaction that
 * waits for us, so each attempt has a lock_timeout and a failed pair is released and retried.
 */
async function lockAllShards(): Promise<pg.Client[]> {
  for (;;) {
    const got: pg.Client[] = [];
    try {
      for (const db of ['shop_0', 'shop_1']) {
        const c = await dest.client(db);
        got.push(c);
        await c.query("BEGIN; SET LOCAL lock_timeout = '200ms'; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE");
      }
      return got;
    } catch {
      await unlock(got).catch(() => undefined);
      await sleep(20);
    }
  }
}

async function unlock(clients: pg.Client[]): Promise<void> {
  for (const c of clients) {
    await c.query('ROLLBACK');
    await c.end();
  }
}

/** Asserts the forward task is untouched and traffic is still configured for the source. */
async function assertNothingChanged(what: string, slotsBefore: string[], pubsBefore: string[]): Promise<void> {
  assert.deepEqual(px.proxy.gate.closedDatabases(), [], `${what}: the gate is open`);
  const t = await taskRow(taskId);
  assert.equal(t?.status, 'running', `${what}: the forward task still runs`);
  assert.equal(t?.inner_status, 'replicating', `${what}: the forward task is still replicating`);
  assert.deepEqual(await destSlots(), slotsBefore, `${what}: no reverse slot left on the destination`);
  assert.deepEqual(await destPublications(), pubsBefore, `${what}: no publication left on the destination`);
  const prod = px.proxy.currentConfig.databases.filter((d) => d.name === 'prod');
  assert.deepEqual(prod.map((d) => d.port), [source.port], `${what}: "prod" still names the source`);
}

const STEPS: CutoverStep[] = ['wait_lag', 'pause', 'drain', 'barrier', 'sequences', 'reverse_slot', 'swap'];

test('a failure injected at each step before the swap aborts the cutover: clients see no error, traffic stays on the source, the task keeps replicating, no reverse slot is left', async () => {
  const slotsBefore = await destSlots();
  const pubsBefore = await destPublications();
  for (const step of STEPS) {
    const load = startLoad(4);
    await sleep(250);
    px.proxy.inject = (s) => {
      if (s === step) throw new Error(`injected at ${step}`);
    };
    try {
      await assert.rejects(admin(`CUTOVER ${taskId}`), (e: Error) => {
        assert.match(e.message, /cutover aborted, traffic resumed on the source/, `${step}: the error says what happened`);
        assert.match(e.message, new RegExp(`injected at ${step}`), `${step}: the error names the cause`);
        return true;
      });
    } finally {
      px.proxy.inject = undefined;
    }
    await sleep(250);
    const res = await load.stop();
    assert.deepEqual(res.errors, [], `${step}: clients saw no error`);
    assert.ok(res.acked.length > 10, `${step}: the load ran (${res.acked.length} writes)`);
    assert.deepEqual([...res.landed], ['shop'], `${step}: every write landed on the source`);
    await assertNothingChanged(step, slotsBefore, pubsBefore);
  }
});

test('a replication stall makes cutover_timeout fire: the pause lasts about the timeout, clients wait then run on the source, nothing changes', async () => {
  const slotsBefore = await destSlots();
  const pubsBefore = await destPublications();
  setGeneral({ cutover_timeout: 1500, cutover_timeout_action: 'abort' });
  // The stall starts once the reverse slot exists and traffic is about to pause (earlier, the
  // lock would block the reverse publication instead of replication).
  const locks: Awaited<ReturnType<typeof lockOrders>>[] = [];
  px.proxy.inject = async (step) => {
    if (step === 'pause' && locks.length === 0) locks.push(...(await lockAllShards()));
  };
  let released = false;
  try {
    const load = startLoad(4);
    await sleep(300);
    const t0 = Date.now();
    await assert.rejects(admin(`CUTOVER ${taskId}`), (e: Error) => {
      assert.match(e.message, /cutover aborted, traffic resumed on the source/);
      assert.match(e.message, /did not reach .* within \d+ ms/, 'the error says the barrier was not reached in time');
      return true;
    });
    const took = Date.now() - t0;
    await sleep(300);
    const res = await load.stop();
    await unlock(locks);
    released = true;
    console.log(`timeout abort: CUTOVER returned after ${took} ms; longest client request ${res.maxMs} ms`);
    assert.ok(took >= 1400 && took < 5000, `the cutover gave up after about cutover_timeout (${took} ms)`);
    assert.ok(res.maxMs >= 1000, `clients were held while paused (${res.maxMs} ms)`);
    assert.ok(res.maxMs < 4000, `the pause did not outlast the timeout by much (${res.maxMs} ms)`);
    assert.deepEqual(res.errors, [], 'clients saw no error');
    assert.deepEqual([...res.landed], ['shop'], 'every write landed on the source');
    await assertNothingChanged('timeout', slotsBefore, pubsBefore);
  } finally {
    px.proxy.inject = undefined;
    if (!released) await unlock(locks).catch(() => undefined);
    setGeneral({ cutover_timeout: 20000 });
  }
});

test('a transaction left open past cutover_grace_period is ended with 57P01 and the cutover completes; other clients see no error and every write is on the new cluster', async () => {
  setGeneral({ cutover_grace_period: 800 });
  const open = new pg.Client({ host: '127.0.0.1', port: px.port, user: 'app', password: 'secret', database: 'prod' });
  const asyncErrors: (Error & { code?: string })[] = [];
  open.on('error', (e) => asyncErrors.push(e));
  await open.connect();
  try {
    await open.query('BEGIN');
    await open.query("UPDATE orders SET note = 'left open' WHERE id = 7");
    const load = startLoad(4);
    await sleep(300);
    const r = (await admin(`CUTOVER ${taskId}`))[0];
    assert.equal(r.cutover, 'OK');
    await sleep(300);
    const res = await load.stop();
    assert.deepEqual(res.errors, [], 'the other clients saw no error');
    assert.ok(Number(r.pause_ms) >= 800, `the gate stayed closed for the grace period (${r.pause_ms} ms)`);

    // The open transaction got a clear error and can no longer commit.
    await waitFor('the open transaction to be ended', async () => asyncErrors.length > 0, 5000);
    assert.equal(asyncErrors[0].code, '57P01');
    assert.match(asyncErrors[0].message, /cutover_grace_period \(800 ms\)/);
    await assert.rejects(open.query('COMMIT'), 'COMMIT of the ended transaction does not succeed');

    // Its write was rolled back: neither cluster has it.
    const on = async (cluster: PgCluster, db: string) => (await cluster.query<{ note: string }>('SELECT note FROM orders WHERE id = 7', [], db)).map((x) => x.note);
    assert.deepEqual(await on(source, 'shop'), ['seed'], 'the ended transaction left nothing on the source');
    const onNew = [...(await on(dest, 'shop_0')), ...(await on(dest, 'shop_1'))];
    assert.deepEqual(onNew, ['seed'], 'nor on the new cluster');

    // Traffic moved; every write of every test, including those made while cutovers aborted, is there.
    assert.ok([...res.landed].some((d) => /^shop_[01]$/.test(d)), `writes after the cutover landed on the new cluster (${[...res.landed]})`);
    const ids = new Set<string>();
    for (const d of ['shop_0', 'shop_1']) for (const x of await dest.query<{ id: string }>('SELECT id::text AS id FROM orders', [], d)) ids.add(x.id);
    for (const id of allAcked) assert.ok(ids.has(String(id)), `acknowledged order ${id} is on the new cluster`);
    assert.equal((await taskRow(taskId))?.status, 'finished');
    reverseTaskId = Number(r.reverse_task_id);
  } finally {
    await open.end().catch(() => undefined);
  }
});

let reverseTaskId = 0;

test('STOP_TASK while a cutover waits at the barrier aborts it at once: traffic resumes where it was and the task stops cleanly', async () => {
  assert.ok(reverseTaskId > 0, 'the previous test registered a reverse task');
  await waitFor('the reverse task to replicate', async () => (await taskRow(reverseTaskId))?.inner_status === 'replicating');
  const prodBefore = px.proxy.currentConfig.databases.filter((d) => d.name === 'prod').map((d) => d.database_name).sort();
  assert.deepEqual(prodBefore, ['shop_0', 'shop_1'], 'prod is served by the new cluster before the rollback');
  // The rollback's destination is the old cluster: stall replication into it once the reverse
  // slot exists and traffic is about to pause.
  const locks: pg.Client[] = [];
  px.proxy.inject = async (step) => {
    if (step === 'pause' && locks.length === 0) locks.push(await lockOrders(source, 'shop'));
  };
  let released = false;
  try {
    const load = startLoad(4);
    await sleep(300);
    const cut = admin(`CUTOVER ${reverseTaskId}`).then(
      () => null,
      (e: Error) => e,
    );
    await waitFor('the cutover to pause traffic', async () => px.proxy.gate.closedDatabases().includes('prod'), 5000);
    await sleep(300); // in the barrier wait now: the stream is stalled behind the lock
    const t0 = Date.now();
    const stop = admin(`STOP_TASK ${reverseTaskId}`);
    const err = await cut;
    const took = Date.now() - t0;
    assert.ok(err, 'the cutover failed');
    assert.match(err.message, /cutover aborted, traffic resumed on the source/);
    assert.match(err.message, /stopped \(STOP_TASK\) during the cutover/);
    assert.ok(took < 3000, `the cutover ended soon after STOP_TASK, not at cutover_timeout (${took} ms)`);
    assert.deepEqual(px.proxy.gate.closedDatabases(), [], 'the gate is open');
    await sleep(300);
    const res = await load.stop();
    assert.deepEqual(res.errors, [], 'clients saw no error');
    assert.ok(res.landed.size > 0 && [...res.landed].every((d) => /^shop_[01]$/.test(d)), `every write stayed on the cluster serving traffic (${[...res.landed]})`);

    // The stream finishes its stalled transaction once the lock goes, then STOP_TASK completes.
    await unlock(locks);
    released = true;
    assert.equal((await stop)[0].stop_task, 'OK');
    const t = await taskRow(reverseTaskId);
    assert.equal(t?.status, 'cancelled');
    assert.deepEqual(await destSlots(), [], 'the stopped task dropped its slot');
    assert.deepEqual(
      (await source.query<{ slot_name: string }>('SELECT slot_name FROM pg_replication_slots')).map((r) => r.slot_name),
      [],
      'no rollback slot was left on the old cluster',
    );
    const prodAfter = px.proxy.currentConfig.databases.filter((d) => d.name === 'prod').map((d) => d.database_name).sort();
    assert.deepEqual(prodAfter, prodBefore, 'prod still names the new cluster');
  } finally {
    px.proxy.inject = undefined;
    if (!released) await unlock(locks).catch(() => undefined);
  }
});
