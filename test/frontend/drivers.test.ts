/**
 * Real drivers through pgshift: node-postgres (`pg`) and postgres.js. Prepared statements under
 * pool churn, errors and rollbacks inside transactions, COPY in both directions, cancellation,
 * session state in both pooler modes, and recovery after a PostgreSQL restart.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import pgLib from 'pg';
import postgres from 'postgres';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { PgCluster, pgBinDir } from '../harness/pg-cluster.js';
import { startProxy, run, type ProxyFixture } from '../harness/proxy.js';

let pg: PgCluster;
let px: ProxyFixture; // transaction mode, pool of 3
let session: ProxyFixture; // session mode, pool of 1
const sqls: postgres.Sql[] = [];

function pjs(port: number, opts: postgres.Options<Record<string, never>> = {}): postgres.Sql {
  const s = postgres({ host: '127.0.0.1', port, user: 'app', password: 'secret', database: 'app', onnotice: () => undefined, ...opts });
  sqls.push(s);
  return s;
}

before(async () => {
  pg = await PgCluster.start();
  px = await startProxy(pg, { general: 'default_pool_size = 3\ncheckout_timeout = 20000' });
  session = await startProxy(pg, { general: 'default_pool_size = 1\npooler_mode = "session"' });
});
after(async () => {
  await Promise.all(sqls.map((s) => s.end({ timeout: 1 }).catch(() => undefined)));
  await px?.stop();
  await session?.stop();
  await pg?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- prepared statements under pool churn -------------------------------------------------------

test('node-postgres: 20 clients × 50 named prepared statements on a pool of 3 all return their own results', async () => {
  const clients = await Promise.all(Array.from({ length: 20 }, () => px.client()));
  await Promise.all(
    clients.map(async (c, ci) => {
      for (let i = 0; i < 50; i++) {
        const which = i % 3;
        if (which === 0) {
          const r = await c.query({ name: 'mul', text: 'SELECT $1::int * $2::int AS v', values: [ci, i] });
          assert.equal(r.rows[0].v, ci * i);
        } else if (which === 1) {
          const r = await c.query({ name: 'cat', text: "SELECT $1::text || '-' || $2::text AS v", values: [`c${ci}`, `q${i}`] });
          assert.equal(r.rows[0].v, `c${ci}-q${i}`);
        } else {
          const r = await c.query({ name: 'series', text: 'SELECT g FROM generate_series(1, $1::int) g', values: [(ci + i) % 7 + 1] });
          assert.deepEqual(r.rows.map((x) => x.g), Array.from({ length: ((ci + i) % 7) + 1 }, (_, k) => k + 1));
        }
      }
    }),
  );
  // Unnamed statements and a statement that fails to parse, on a client that also holds named ones.
  const c = clients[0];
  await assert.rejects(c.query({ name: 'bad', text: 'SELEC 1' }), /syntax error/);
  assert.equal((await c.query({ name: 'mul', text: 'SELECT $1::int * $2::int AS v', values: [6, 7] })).rows[0].v, 42);
  assert.equal((await c.query('SELECT $1::int AS v', [5])).rows[0].v, 5);
  await Promise.all(clients.map((x) => x.end()));
});

test('postgres.js: 20 connections × 50 prepared queries on a pool of 3 all return their own results', async () => {
  const sql = pjs(px.port, { max: 20 });
  const jobs: Promise<void>[] = [];
  for (let w = 0; w < 20; w++) {
    jobs.push(
      (async () => {
        for (let i = 0; i < 50; i++) {
          if (i % 2) {
            const [r] = await sql`SELECT ${w}::int * ${i}::int AS v`;
            assert.equal(r.v, w * i);
          } else {
            const rows = await sql`SELECT ${'w' + w}::text AS w, g FROM generate_series(1, ${(i % 5) + 1}::int) g`;
            assert.equal(rows.length, (i % 5) + 1);
            assert.ok(rows.every((r) => r.w === 'w' + w));
          }
        }
      })(),
    );
  }
  await Promise.all(jobs);
  await sql.end();
});

// ---- errors and rollbacks ---------------------------------------------------------------------------

test('node-postgres: an error inside a transaction, ROLLBACK, savepoint rollback; the connection stays usable', async () => {
  await pg.query('CREATE TABLE tx_pg (id int PRIMARY KEY, v text)');
  const c = await px.client();
  await c.query('BEGIN');
  await c.query("INSERT INTO tx_pg VALUES (1, 'lost')");
  await assert.rejects(c.query('SELECT 1/0'), (e: { code?: string }) => e.code === '22012');
  await assert.rejects(c.query('SELECT 1'), (e: { code?: string }) => e.code === '25P02', 'aborted transaction refuses further statements');
  await c.query('ROLLBACK');
  assert.equal((await c.query('SELECT count(*)::int AS n FROM tx_pg')).rows[0].n, 0);

  // Extended protocol error mid-transaction.
  await c.query('BEGIN');
  await assert.rejects(c.query('INSERT INTO tx_pg VALUES ($1, $2)', ['x', 'y']), (e: { code?: string }) => e.code === '22P02');
  await c.query('ROLLBACK');

  await c.query('BEGIN');
  await c.query("INSERT INTO tx_pg VALUES (1, 'kept')");
  await c.query('SAVEPOINT s1');
  await c.query("INSERT INTO tx_pg VALUES (2, 'undone')");
  await assert.rejects(c.query("INSERT INTO tx_pg VALUES (1, 'dup')"), (e: { code?: string }) => e.code === '23505');
  await c.query('ROLLBACK TO SAVEPOINT s1');
  await c.query('INSERT INTO tx_pg VALUES ($1, $2)', [3, 'after']);
  await c.query('COMMIT');
  const rows = (await c.query('SELECT id, v FROM tx_pg ORDER BY id')).rows;
  assert.deepEqual(rows, [
    { id: 1, v: 'kept' },
    { id: 3, v: 'after' },
  ]);
  // An error outside a transaction (autocommit) also leaves the connection usable.
  await assert.rejects(c.query('SELECT * FROM no_such_table'), (e: { code?: string }) => e.code === '42P01');
  assert.equal((await c.query('SELECT 2 AS two')).rows[0].two, 2);
  await c.end();
});

test('postgres.js: a failing sql.begin rolls back, a failing savepoint rolls back only itself', async () => {
  await pg.query('CREATE TABLE tx_pjs (id int PRIMARY KEY)');
  const sql = pjs(px.port, { max: 2 });
  await assert.rejects(
    sql.begin(async (tx) => {
      await tx`INSERT INTO tx_pjs VALUES (1)`;
      await tx`INSERT INTO tx_pjs VALUES (1)`;
    }),
    (e: { code?: string }) => e.code === '23505',
  );
  assert.equal((await sql`SELECT id FROM tx_pjs`).length, 0);
  await sql.begin(async (tx) => {
    await tx`INSERT INTO tx_pjs VALUES (10)`;
    await tx
      .savepoint(async (sp) => {
        await sp`INSERT INTO tx_pjs VALUES (11)`;
        await sp`SELECT 1/0`;
      })
      .catch((e: { code?: string }) => assert.equal(e.code, '22012'));
    await tx`INSERT INTO tx_pjs VALUES (12)`;
  });
  assert.deepEqual((await sql`SELECT id FROM tx_pjs ORDER BY id`).map((r) => r.id), [10, 12]);
  await sql.end();
});

// ---- COPY -------------------------------------------------------------------------------------------

test('node-postgres + pg-copy-streams: COPY FROM STDIN and COPY TO STDOUT move every row intact', async () => {
  await pg.query('CREATE TABLE copy_t (id int, name text, note text)');
  const c = await px.client();
  const N = 20_000;
  const lines: string[] = [];
  for (let i = 1; i <= N; i++) lines.push(`${i}\tname ${i}\t${i % 10 === 0 ? '\\N' : 'ü ' + 'x'.repeat(i % 50)}\n`);
  const ingest = c.query(copyFrom('COPY copy_t FROM STDIN'));
  await pipeline(Readable.from(lines.map((l) => Buffer.from(l))), ingest);
  assert.equal(ingest.rowCount, N);
  const [cnt] = await pg.query<{ n: string; s: string }>('SELECT count(*) AS n, sum(id) AS s FROM copy_t');
  assert.deepEqual(cnt, { n: String(N), s: String((N * (N + 1)) / 2) });

  const chunks: Buffer[] = [];
  await pipeline(
    c.query(copyTo('COPY (SELECT * FROM copy_t ORDER BY id) TO STDOUT')),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  assert.equal(Buffer.concat(chunks).toString('utf8'), lines.join(''));

  // A COPY that fails mid-stream reports the error and the connection keeps working.
  const bad = c.query(copyFrom('COPY copy_t FROM STDIN'));
  await assert.rejects(pipeline(Readable.from([Buffer.from('1\tok\tok\n'), Buffer.from('not-a-number\tx\tx\n')]), bad), /invalid input syntax for type integer/);
  assert.equal((await c.query('SELECT count(*)::int AS n FROM copy_t')).rows[0].n, N);
  await c.end();
});

test('postgres.js: COPY FROM STDIN (writable) and COPY TO STDOUT (readable)', async () => {
  await pg.query('CREATE TABLE copy_pjs (id int, v text)');
  const sql = pjs(px.port, { max: 1 });
  const w = await sql`COPY copy_pjs FROM STDIN`.writable();
  const body = Array.from({ length: 1000 }, (_, i) => `${i}\tv${i}\n`).join('');
  await pipeline(Readable.from([Buffer.from(body)]), w);
  const r = await sql`COPY (SELECT * FROM copy_pjs ORDER BY id) TO STDOUT`.readable();
  const got: Buffer[] = [];
  for await (const chunk of r) got.push(chunk as Buffer);
  assert.equal(Buffer.concat(got).toString(), body);
  const [{ n }] = await sql`SELECT count(*)::int AS n FROM copy_pjs`;
  assert.equal(n, 1000);
  await sql.end();
});

// ---- cancellation -----------------------------------------------------------------------------------

test('node-postgres: a CancelRequest stops pg_sleep(30) with 57014 and the connection works after', async () => {
  const c = await px.client();
  const q = new pgLib.Query('SELECT pg_sleep(30)');
  const done = new Promise<{ code?: string }>((resolve, reject) => {
    q.on('error', (e: Error) => resolve(e as { code?: string }));
    q.on('end', () => reject(new Error('query was not cancelled')));
  });
  const t0 = Date.now();
  c.query(q);
  await sleep(300);
  const canceller = new pgLib.Client({ host: '127.0.0.1', port: px.port, user: 'app', password: 'secret', database: 'app' });
  (canceller as unknown as { cancel(c: pgLib.Client, q: pgLib.Query): void }).cancel(c, q);
  const err = await done;
  assert.equal(err.code, '57014');
  assert.ok(Date.now() - t0 < 10_000, 'cancelled long before the sleep would end');
  assert.equal((await c.query('SELECT 3 AS three')).rows[0].three, 3);
  await c.end();
});

test('postgres.js: query.cancel() stops pg_sleep(30) with 57014 and the connection works after', async () => {
  const sql = pjs(px.port, { max: 1 });
  const t0 = Date.now();
  const q = sql`SELECT pg_sleep(30)`;
  const res = q.then(
    () => null,
    (e: { code?: string }) => e,
  );
  await sleep(300);
  q.cancel();
  const err = await res;
  assert.equal(err?.code, '57014');
  assert.ok(Date.now() - t0 < 10_000);
  const [{ v }] = await sql`SELECT 4 AS v`;
  assert.equal(v, 4);
  await sql.end();
});

// ---- session state ----------------------------------------------------------------------------------

test('session mode: a SET sticks for the client, and DISCARD ALL keeps it from the next client', async () => {
  const a = await session.client();
  await a.query("SET application_name = 'client_a'");
  await a.query('SET search_path TO pg_catalog');
  await a.query('PREPARE a_stmt AS SELECT 1');
  const pidA = (await a.query('SELECT pg_backend_pid() AS p')).rows[0].p;
  for (let i = 0; i < 3; i++) {
    const r = await a.query("SELECT current_setting('application_name') AS app, current_setting('search_path') AS sp, pg_backend_pid() AS p");
    assert.deepEqual(r.rows[0], { app: 'client_a', sp: 'pg_catalog', p: pidA });
  }
  await a.end();
  const b = await session.client();
  const r = await b.query("SELECT current_setting('application_name') AS app, current_setting('search_path') AS sp, pg_backend_pid() AS p, (SELECT count(*)::int FROM pg_prepared_statements) AS prepared");
  assert.equal(r.rows[0].p, pidA, 'pool of 1: the second client reuses the same server connection');
  assert.notEqual(r.rows[0].app, 'client_a');
  assert.equal(r.rows[0].sp, '"$user", public');
  assert.equal(r.rows[0].prepared, 0, 'prepared statements of the first client are gone');
  await b.end();
});

test('transaction mode: SET outside a transaction follows the client to another server and does not leak', async () => {
  const a = await px.client();
  const setRes = (await a.query("SET search_path TO pg_catalog, public; SET application_name = 'follow_me'; SELECT pg_backend_pid() AS p")) as unknown as pgLib.QueryResult[];
  const pidSet = setRes[2].rows[0].p;
  // Another client takes exactly that server connection inside a transaction.
  const b = await px.client();
  let held = false;
  for (let i = 0; i < 50 && !held; i++) {
    await b.query('BEGIN');
    const p = (await b.query('SELECT pg_backend_pid() AS p')).rows[0].p;
    if (p === pidSet) held = true;
    else {
      await b.query('COMMIT');
      await sleep(20);
    }
  }
  assert.ok(held, 'client B got the server connection client A ran its SETs on');
  const bSees = (await b.query("SELECT current_setting('search_path') AS sp, current_setting('application_name') AS app")).rows[0];
  assert.equal(bSees.sp, '"$user", public', 'A\'s search_path did not leak to B');
  assert.notEqual(bSees.app, 'follow_me', 'A\'s application_name did not leak to B');
  const aSees = (await a.query("SELECT current_setting('search_path') AS sp, current_setting('application_name') AS app, pg_backend_pid() AS p")).rows[0];
  assert.notEqual(aSees.p, pidSet, 'A runs on a different server now');
  assert.equal(aSees.sp, 'pg_catalog, public');
  assert.equal(aSees.app, 'follow_me');
  await b.query('COMMIT');
  // RESET brings A back to the default everywhere.
  await a.query('RESET search_path');
  for (let i = 0; i < 3; i++) assert.equal((await a.query("SELECT current_setting('search_path') AS sp")).rows[0].sp, '"$user", public');
  await a.end();
  await b.end();
});

// ---- server restart ---------------------------------------------------------------------------------

/** pg_ctl restart without blocking the event loop, so clients keep running meanwhile. */
async function restartAsync(): Promise<void> {
  const pgctl = join(pgBinDir(), 'pg_ctl');
  const args = ['-D', pg.dataDir, '-l', pg.logFile, '-m', 'fast', '-w', '-t', '60', 'restart'];
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const r = asRoot ? await run('runuser', ['-u', process.env.PGSHIFT_PG_OS_USER ?? 'postgres', '--', pgctl, ...args]) : await run(pgctl, args);
  assert.equal(r.code, 0, r.stderr);
}

test('a PostgreSQL restart mid-run: clients get errors, then every client recovers without reconnecting', async () => {
  const pgClients = await Promise.all(Array.from({ length: 5 }, () => px.client()));
  const pj = pjs(px.port, { max: 3, connect_timeout: 30 });
  let stop = false;
  const errors: string[] = [];
  let restarted = false;
  const recovered: boolean[] = [];
  const loop = async (q: (i: number) => Promise<number>, k: number) => {
    for (let i = 0; !stop; i++) {
      try {
        assert.equal(await q(i), i);
        if (restarted) recovered[k] = true;
      } catch (e) {
        errors.push(`${(e as { code?: string }).code} ${(e as Error).message}`);
        await sleep(50);
      }
    }
  };
  const loops = [
    ...pgClients.map((c, k) => loop(async (i) => (k % 2 ? (await c.query('SELECT $1::int AS v', [i])).rows[0].v : (await c.query(`SELECT ${i} AS v`)).rows[0].v), k)),
    ...[0, 1, 2].map((k) => loop(async (i) => (await pj`SELECT ${i}::int AS v`)[0].v, 5 + k)),
  ];
  await sleep(300);
  await restartAsync();
  restarted = true;
  // Every loop succeeds again on its own (no reconnect), within a generous deadline.
  for (const deadline = Date.now() + 30_000; recovered.filter(Boolean).length < loops.length && Date.now() < deadline; ) await sleep(50);
  stop = true;
  await Promise.all(loops);
  assert.ok(errors.length > 0, 'the restart was visible to clients');
  assert.equal(recovered.filter(Boolean).length, loops.length, 'every client succeeded after the restart');
  // Every client works now, on the same client connection.
  for (const c of pgClients) assert.equal((await c.query('SELECT 1 AS v')).rows[0].v, 1);
  for (const c of pgClients) assert.equal((await c.query('SELECT $1::int AS v', [2])).rows[0].v, 2);
  assert.equal((await pj`SELECT 5::int AS v`)[0].v, 5);
  // Each error is an ErrorResponse with a SQLSTATE (sent by pgshift or PostgreSQL), never a dropped client socket.
  for (const e of errors) assert.match(e, /^[0-9A-Z]{5} /, e);
});
