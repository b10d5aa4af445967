/**
 * Session state beyond SET under transaction pooling, with ONE server connection shared by
 * every client: what client A leaves on it (set_config, SQL PREPARE, LISTEN, temporary tables,
 * session advisory locks, cursors WITH HOLD, SET ROLE) is never seen by client B, whether A
 * leaves with Terminate or its socket is killed, and A keeps its state for its whole session.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, type ProxyFixture } from '../harness/proxy.js';

let cluster: PgCluster;
let px: ProxyFixture;

before(async () => {
  cluster = await PgCluster.start();
  px = await startProxy(cluster, { general: 'default_pool_size = 1\nmin_pool_size = 1\ncheckout_timeout = 20000' });
  await cluster.query('CREATE ROLE reporting NOLOGIN');
  await cluster.query('CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer uuid NOT NULL DEFAULT gen_random_uuid(), note text)');
  await cluster.query("INSERT INTO orders (note) SELECT CASE WHEN g % 3 = 0 THEN NULL ELSE repeat('n', g) END FROM generate_series(1, 20) g");
  // A function that changes a reported parameter where pgshift cannot see it: only the
  // server's ParameterStatus tells.
  await cluster.query("CREATE FUNCTION app_local_zone(z text) RETURNS void LANGUAGE plpgsql AS $$BEGIN PERFORM pg_catalog.set_config('TimeZone', z, false); END$$");
});
after(async () => {
  await px?.stop();
  await cluster?.stop();
});

interface Feature {
  name: string;
  /** A leaves the state behind (outside a transaction block unless stated). */
  hold(a: pg.Client): Promise<void>;
  /** A still has its state in a later transaction. */
  stillHas(a: pg.Client): Promise<void>;
  /** SQL for B returning n = 1 when A's state is visible on B's server connection. */
  leak: string;
  /** A keeps the connection (B waits for A to leave) rather than its state following it. */
  pins: boolean;
}

const one = async (c: pg.Client, sql: string): Promise<unknown> => (await c.query(sql)).rows[0];

const features: Feature[] = [
  {
    name: "set_config('search_path', …, false)",
    hold: async (a) => void (await a.query("SELECT set_config('search_path', 'pg_catalog', false)")),
    stillHas: async (a) => assert.deepEqual(await one(a, 'SHOW search_path'), { search_path: 'pg_catalog' }),
    leak: "SELECT (current_setting('search_path') = 'pg_catalog')::int AS n",
    pins: false,
  },
  {
    name: "set_config('statement_timeout', …, false) in a named prepared statement",
    hold: async (a) => void (await a.query({ name: 'st', text: "SELECT pg_catalog.set_config('statement_timeout', '1234', false) AS v, $1::int AS x", values: [1] })),
    stillHas: async (a) => assert.deepEqual(await one(a, 'SHOW statement_timeout'), { statement_timeout: '1234ms' }),
    leak: "SELECT (current_setting('statement_timeout') <> '0')::int AS n",
    pins: false,
  },
  {
    name: 'a reported parameter changed inside a function (ParameterStatus)',
    hold: async (a) => void (await a.query("SELECT app_local_zone('Asia/Tokyo')")),
    stillHas: async (a) => assert.deepEqual(await one(a, 'SHOW TimeZone'), { TimeZone: 'Asia/Tokyo' }),
    leak: "SELECT (current_setting('TimeZone') = 'Asia/Tokyo')::int AS n",
    pins: false,
  },
  {
    name: 'SQL PREPARE',
    hold: async (a) => void (await a.query('PREPARE by_id (bigint) AS SELECT note FROM orders WHERE id = $1')),
    stillHas: async (a) => assert.equal((await a.query('EXECUTE by_id(3)')).rows.length, 1),
    leak: "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'by_id'",
    pins: true,
  },
  {
    name: 'LISTEN',
    hold: async (a) => void (await a.query('LISTEN order_events')),
    stillHas: async (a) => {
      const got = new Promise<string>((resolve) => a.once('notification', (n) => resolve(n.payload ?? '')));
      await cluster.query("NOTIFY order_events, 'paid'");
      assert.equal(await got, 'paid');
    },
    leak: 'SELECT count(*)::int AS n FROM pg_listening_channels()',
    pins: true,
  },
  {
    name: 'a temporary table',
    hold: async (a) => void (await a.query("CREATE TEMP TABLE basket AS SELECT id, note FROM orders WHERE note IS NOT NULL")),
    stillHas: async (a) => assert.deepEqual(await one(a, 'SELECT count(*)::int AS n FROM basket'), { n: 14 }),
    leak: 'SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = pg_my_temp_schema()',
    pins: true,
  },
  {
    name: 'a session advisory lock (pg_advisory_lock)',
    hold: async (a) => void (await a.query('SELECT pg_advisory_lock(4242)')),
    stillHas: async (a) => assert.deepEqual(await one(a, "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"), { n: 1 }),
    leak: "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    pins: true,
  },
  {
    name: 'a cursor WITH HOLD',
    hold: async (a) => {
      await a.query('BEGIN');
      await a.query('DECLARE recent SCROLL CURSOR WITH HOLD FOR SELECT id FROM orders ORDER BY id');
      await a.query('COMMIT');
    },
    stillHas: async (a) => assert.deepEqual((await a.query('FETCH ABSOLUTE 2 FROM recent')).rows, [{ id: '2' }]),
    leak: "SELECT count(*)::int AS n FROM pg_cursors WHERE name = 'recent'",
    pins: true,
  },
  {
    name: 'SET ROLE',
    hold: async (a) => void (await a.query('SET ROLE reporting')),
    stillHas: async (a) => assert.deepEqual(await one(a, 'SELECT current_user AS u'), { u: 'reporting' }),
    leak: "SELECT (current_user <> 'postgres')::int AS n",
    pins: true,
  },
];

/** Kills A's socket without a Terminate, as a crashed application would. */
function killSocket(c: pg.Client): void {
  (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

const pidOf = async (c: pg.Client): Promise<number> => ((await one(c, 'SELECT pg_backend_pid() AS pid')) as { pid: number }).pid;

for (const leave of ['Terminate', 'a killed socket'] as const) {
  for (const f of features) {
    test(`${f.name}: client B never sees client A's state on their shared server connection (A leaves with ${leave})`, { timeout: 15_000 }, async () => {
      const a = await px.client();
      const serverPid = await pidOf(a);
      await f.hold(a);
      const b = await px.client();
      let bDone = false;
      // A named statement: B's own statements must survive whatever reset A's connection gets.
      const bRun = b.query({ name: 'leak_check', text: `SELECT pg_backend_pid() AS pid, q.n FROM (${f.leak}) q` }).then((r) => {
        bDone = true;
        return r.rows[0] as { pid: number; n: number };
      });
      await f.stillHas(a);
      await f.stillHas(a); // and again, in another transaction
      if (f.pins) assert.equal(bDone, false, 'B waits: A keeps the server connection while it holds session state');
      else await bRun; // the parameter follows A, the connection does not
      if (leave === 'Terminate') await a.end();
      else killSocket(a);
      const seen = await bRun;
      assert.equal(seen.pid, serverPid, 'B ran on the server connection A used');
      assert.equal(seen.n, 0, `B does not see ${f.name}`);
      assert.deepEqual(await b.query({ name: 'leak_check', text: `SELECT pg_backend_pid() AS pid, q.n FROM (${f.leak}) q` }).then((r) => r.rows[0].n), 0);
      await b.end();
    });
  }
}

test('a client killed inside a transaction that holds a session advisory lock: its server connection is closed, and the lock with it', async () => {
  const a = await px.client();
  const serverPid = await pidOf(a);
  await a.query('BEGIN');
  await a.query('SELECT pg_advisory_lock(77)');
  killSocket(a);
  const b = await px.client();
  const r = await one(b, "SELECT pg_backend_pid() AS pid, (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND objid = 77) AS n");
  assert.notEqual((r as { pid: number }).pid, serverPid, 'a connection left inside a transaction is not reused');
  assert.equal((r as { n: number }).n, 0);
  await b.end();
});

test('a temporary table ON COMMIT DROP and a transaction-level advisory lock leave nothing behind, so the client keeps sharing its connection', async () => {
  const a = await px.client();
  await a.query('BEGIN');
  await a.query('CREATE TEMP TABLE scratch (id bigint) ON COMMIT DROP');
  await a.query('SELECT pg_advisory_xact_lock(5)');
  await a.query('COMMIT');
  const b = await px.client();
  // B is served while A is still connected: A was not pinned.
  const r = await Promise.race([
    one(b, 'SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = pg_my_temp_schema()'),
    new Promise((_, reject) => setTimeout(() => reject(new Error('B was not served within 3 s: A kept the connection')), 3000).unref()),
  ]);
  assert.deepEqual(r, { n: 0 });
  await b.end();
  await a.end();
});
