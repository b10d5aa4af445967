/**
 * The admin database through real clients (psql, node-postgres): PgDog's column names for every
 * SHOW, values that reflect the traffic, credentials, errors that leave the session usable,
 * RELOAD, PAUSE/RESUME, and SHUTDOWN.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import pgLib from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, runPsql, runPsqlTable, type ProxyFixture } from '../harness/proxy.js';

let pg: PgCluster;
let px: ProxyFixture;
before(async () => {
  pg = await PgCluster.start();
  px = await startProxy(pg, { general: 'default_pool_size = 4' });
});
after(async () => {
  await px?.stop();
  await pg?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function adminClient(fx: ProxyFixture = px): Promise<pgLib.Client> {
  const c = new pgLib.Client({ host: '127.0.0.1', port: fx.port, user: 'admin', password: 'adminpw', database: 'admin' });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

const COLUMNS: Record<string, string[]> = {
  POOLS: ['id', 'database', 'user', 'addr', 'port', 'shard', 'role', 'cl_waiting', 'sv_idle', 'sv_active', 'sv_idle_xact', 'sv_total', 'maxwait', 'maxwait_us', 'pool_mode', 'paused', 'banned', 'healthy', 'errors', 're_synced', 'out_of_sync', 'force_closed', 'online', 'schema_admin', 'bans', 'ban_reason'],
  CLIENTS: ['id', 'user', 'database', 'addr', 'port', 'state', 'replication', 'connect_time', 'queries', 'transactions', 'bytes_received', 'bytes_sent', 'errors', 'application_name', 'server_id', 'age_ms'],
  SERVERS: ['pool_id', 'database', 'user', 'addr', 'port', 'state', 'connect_time', 'remote_pid', 'transactions', 'queries', 'prepared_statements', 'healthchecks', 'errors', 'bytes_received', 'bytes_sent', 'age', 'application_name'],
  STATS: ['database', 'user', 'addr', 'port', 'shard', 'role', 'total_xact_count', 'total_query_count', 'total_server_assignment_count', 'total_received', 'total_sent', 'total_wait_time', 'total_errors', 'total_connect_count', 'total_healthchecks'],
  CONFIG: ['name', 'value'],
  VERSION: ['version'],
};

function rowsOf(t: { columns: string[]; rows: string[][] }): Record<string, string>[] {
  return t.rows.map((r) => Object.fromEntries(t.columns.map((c, i) => [c, r[i]])));
}

test('every SHOW returns PgDog\'s column names, in order, even before any traffic', async () => {
  for (const [what, cols] of Object.entries(COLUMNS)) {
    const t = await runPsqlTable(px.adminUrl(), `SHOW ${what}`);
    assert.deepEqual(t.columns, cols, `SHOW ${what} columns`);
  }
});

test('SHOW values reflect traffic: clients, pools, servers and stats', async () => {
  const c = await px.client({ application_name: 'stats_probe' });
  for (let i = 0; i < 5; i++) await c.query('SELECT $1::int AS v', [i]);
  await c.query('BEGIN');
  const pid = (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p;

  const clients = rowsOf(await runPsqlTable(px.adminUrl(), 'SHOW CLIENTS'));
  const me = clients.find((r) => r.application_name === 'stats_probe');
  assert.ok(me, `SHOW CLIENTS lists the client: ${JSON.stringify(clients)}`);
  assert.equal(me.user, 'app');
  assert.equal(me.database, 'app');
  assert.equal(me.addr, '127.0.0.1');
  assert.equal(me.state, 'active', 'inside a transaction the client is active');
  assert.ok(Number(me.queries) >= 6, `queries counted: ${me.queries}`);
  assert.ok(Number(me.transactions) >= 5, `transactions counted: ${me.transactions}`);
  assert.ok(Number(me.bytes_received) > 0 && Number(me.bytes_sent) > 0);
  assert.notEqual(me.server_id, '');

  const servers = rowsOf(await runPsqlTable(px.adminUrl(), 'SHOW SERVERS'));
  const mine = servers.find((s) => s.remote_pid === String(pid));
  assert.ok(mine, `SHOW SERVERS lists the server backend ${pid}: ${JSON.stringify(servers)}`);
  assert.equal(mine.state, 'active');
  assert.equal(mine.database, 'app');
  assert.equal(mine.user, 'postgres', 'the server-side user');
  assert.equal(mine.port, String(pg.port));

  const pools = rowsOf(await runPsqlTable(px.adminUrl(), 'SHOW POOLS'));
  assert.equal(pools.length, 1);
  assert.equal(pools[0].database, 'app');
  assert.equal(pools[0].user, 'app');
  assert.equal(pools[0].pool_mode, 'transaction');
  assert.equal(pools[0].sv_active, '1');
  assert.equal(pools[0].sv_idle_xact, '1', 'the server sits in an open transaction');
  assert.equal(pools[0].paused, 'f');
  assert.equal(pools[0].healthy, 't');
  assert.ok(Number(pools[0].sv_total) >= 1 && Number(pools[0].sv_total) <= 4);

  await c.query('COMMIT');
  await c.end();
  const stats = rowsOf(await runPsqlTable(px.adminUrl(), 'SHOW STATS'));
  assert.equal(stats.length, 1);
  assert.ok(Number(stats[0].total_query_count) >= 7, `total_query_count ${stats[0].total_query_count}`);
  assert.ok(Number(stats[0].total_xact_count) >= 6, `total_xact_count ${stats[0].total_xact_count}`);
  assert.ok(Number(stats[0].total_connect_count) >= 1);
  assert.ok(Number(stats[0].total_received) > 0 && Number(stats[0].total_sent) > 0);

  await sleep(50);
  const after = rowsOf(await runPsqlTable(px.adminUrl(), 'SHOW CLIENTS'));
  assert.ok(!after.some((r) => r.application_name === 'stats_probe'), 'a client that left is no longer listed');
});

test('SHOW CONFIG shows settings with passwords redacted; SHOW VERSION names pgshift', async () => {
  const cfg = await runPsql(px.adminUrl(), 'SHOW CONFIG');
  const byName = new Map(cfg.map((r) => [r.name, r.value]));
  assert.equal(byName.get('default_pool_size') ?? byName.get('general.default_pool_size'), '4', `default_pool_size in ${[...byName.keys()].join(', ')}`);
  const text = JSON.stringify(cfg);
  assert.ok(!text.includes('adminpw'), 'the admin password is not shown');
  assert.ok(!text.includes('"secret"') && !/[^a-z_]secret[^a-z_]/.test(cfg.map((r) => r.value).join(' ')), 'user passwords are not shown');
  const [v] = await runPsql(px.adminUrl(), 'show version;');
  assert.match(v.version!, /^pgshift \d+\.\d+\.\d+/);
  const help = await runPsql(px.adminUrl(), 'SHOW HELP');
  assert.ok(help.some((r) => r.command === 'PAUSE'), 'SHOW HELP lists the commands its error messages point to');
});

test('admin login needs the admin password (28P01) and the admin user', async () => {
  await assert.rejects(runPsql(px.adminUrl('wrong'), 'SHOW VERSION'), /password authentication failed for user "admin"/);
  const c = new pgLib.Client({ host: '127.0.0.1', port: px.port, user: 'admin', password: 'nope', database: 'admin' });
  c.on('error', () => undefined);
  await assert.rejects(c.connect(), (e: { code?: string }) => e.code === '28P01');
  await assert.rejects(runPsql(px.url('app', 'secret', 'admin'), 'SHOW VERSION'), /password authentication failed for user "app"/);
});

test('unknown and malformed commands get clear errors and the session keeps working', async () => {
  const c = await adminClient();
  const cases: [string, RegExp][] = [
    ['FROBNICATE', /unknown admin command/],
    ['SHOW', /SHOW needs what to show/],
    ['SHOW WIDGETS', /unknown SHOW item/],
    ['MAINTENANCE', /MAINTENANCE needs ON or OFF/],
    ['MAINTENANCE MAYBE', /ON or OFF/],
    ['PAUSE nosuchdb', /nosuchdb/],
    ['RESUME a b c', /too many arguments/],
    ['SHOW POOLS; SHOW CLIENTS', /one command per query/],
    ["SHOW 'x", /unterminated/],
    ['SELECT 1', /unknown admin command/],
  ];
  for (const [sql, re] of cases) {
    await assert.rejects(c.query(sql), (e: Error) => re.test(e.message), `${sql} → ${re}`);
    assert.equal((await c.query('SHOW VERSION')).rows.length, 1, `session usable after ${sql}`);
  }
  assert.equal((await c.query('  show   pools ; ')).rows.length, 1, 'case and whitespace are forgiven');
  assert.equal((await c.query('')).rows.length, 0, 'an empty query is fine');
  await c.end();
});

test('the extended protocol on the admin database is a clear error, and simple queries still work', async () => {
  const c = await adminClient();
  await assert.rejects(c.query({ text: 'SHOW POOLS', values: [1] }), (e: { code?: string; message: string }) => e.code === '0A000' && /only simple queries/.test(e.message));
  assert.equal((await c.query('SHOW VERSION')).rows.length, 1);
  await assert.rejects(c.query({ name: 'n', text: 'SHOW POOLS' }), /simple quer|extended/);
  assert.equal((await c.query('SHOW VERSION')).rows.length, 1);
  await c.end();
});

test('PAUSE and RESUME show in SHOW POOLS; PAUSE of an unknown database is refused', async () => {
  await px.admin('PAUSE app');
  assert.equal(rowsOf(await runPsqlTable(px.adminUrl(), 'SHOW POOLS'))[0].paused, 't');
  await assert.rejects(px.admin('PAUSE nosuchdb'), /database "nosuchdb" is not in pgshift\.toml/);
  await px.admin('RESUME app');
  assert.equal(rowsOf(await runPsqlTable(px.adminUrl(), 'SHOW POOLS'))[0].paused, 'f');
  const c = await px.client();
  assert.equal((await c.query('SELECT 1 AS v')).rows[0].v, 1);
  await c.end();
});

test('RELOAD re-reads the files: a new user can log in; a broken file is refused and nothing changes', async () => {
  await assert.rejects(runPsql(px.url('newbie', 'pw2'), 'SELECT 1'), /password authentication failed for user "newbie"/);
  appendFileSync(px.usersPath, `\n[[users]]\nname = "newbie"\ndatabase = "app"\npassword = "pw2"\nserver_user = "postgres"\nserver_password = "postgres"\n`);
  await px.admin('RELOAD');
  assert.deepEqual(await runPsql(px.url('newbie', 'pw2'), 'SELECT 5 AS v'), [{ v: '5' }]);
  assert.deepEqual(await runPsql(px.url(), 'SELECT 6 AS v'), [{ v: '6' }], 'existing users still work');

  const good = readFileSync(px.configPath, 'utf8');
  writeFileSync(px.configPath, good + '\n[general2]\nnonsense = 1\n');
  await assert.rejects(px.admin('RELOAD'), /RELOAD failed, the running configuration is unchanged/);
  writeFileSync(px.configPath, good);
  assert.deepEqual(await runPsql(px.url('newbie', 'pw2'), 'SELECT 7 AS v'), [{ v: '7' }]);
  assert.equal((await runPsql(px.adminUrl(), 'SHOW VERSION')).length, 1);
});

test('a client connected across RELOAD keeps working', async () => {
  const c = await px.client();
  await c.query({ name: 'p', text: 'SELECT $1::int AS v', values: [1] });
  await px.admin('RELOAD');
  assert.equal((await c.query({ name: 'p', text: 'SELECT $1::int AS v', values: [2] })).rows[0].v, 2);
  assert.equal((await c.query('SELECT 3 AS v')).rows[0].v, 3);
  await c.end();
});

test('SHUTDOWN: the admin gets its answer, open transactions finish, idle clients are closed, new connections are refused', async () => {
  const own = await startProxy(pg, { general: 'shutdown_timeout = 10000' });
  try {
    const idle = await own.client();
    const tx = await own.client();
    let idleClosed = false;
    idle.on('end', () => (idleClosed = true));
    assert.equal((await idle.query('SELECT 1 AS v')).rows[0].v, 1);
    await tx.query('BEGIN');
    await tx.query('SELECT 1');
    const t0 = Date.now();
    const stopped = new Promise<void>((resolve) => (own.proxy.onShutdown = resolve));
    const res = await runPsqlTable(own.adminUrl(), 'SHUTDOWN');
    assert.deepEqual(res.columns, ['SHUTDOWN'], 'psql prints the command tag');
    await sleep(100);
    assert.equal((await tx.query('SELECT 2 AS v')).rows[0].v, 2, 'the open transaction keeps running');
    await tx.query('COMMIT');
    const finished = await Promise.race([stopped.then(() => true), sleep(8000).then(() => false)]);
    assert.ok(finished && Date.now() - t0 < 8000, 'shutdown completed once the transaction ended, without waiting for idle clients to leave');
    await sleep(100);
    assert.ok(idleClosed, 'the idle client was disconnected');
    let refused = false;
    for (const deadline = Date.now() + 10_000; !refused && Date.now() < deadline; ) {
      refused = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: own.port });
        s.once('connect', () => {
          s.destroy();
          resolve(false);
        });
        s.once('error', () => resolve(true));
      });
      if (!refused) await sleep(50);
    }
    assert.ok(refused, 'the listener is closed after SHUTDOWN');
    await assert.rejects(runPsql(own.url(), 'SELECT 1'), /refused|could not connect|failed/);
  } finally {
    await own.stop();
  }
});
