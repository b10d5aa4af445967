/**
 * pgbench through pgshift in transaction mode with fewer server connections than clients: the
 * select-only and TPC-B scripts in every query mode run without a single failed transaction,
 * and the pgbench_* tables add up to exactly what the transactions wrote.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { startProxy, run, type ProxyFixture } from '../harness/proxy.js';

const CLIENTS = 6;
const THREADS = 2;
const TX = 40; // transactions per client

let pg: PgCluster;
let px: ProxyFixture;
before(async () => {
  pg = await PgCluster.start();
  px = await startProxy(pg, { general: 'default_pool_size = 3\npooler_mode = "transaction"' });
});
after(async () => {
  await px?.stop();
  await pg?.stop();
});

function pgbench(args: string[]) {
  return run('pgbench', ['-h', '127.0.0.1', '-p', String(px.port), '-U', 'app', ...args, 'app'], { PGPASSWORD: 'secret', PGSSLMODE: 'disable' });
}

interface BenchResult {
  processed: number;
  failed: number;
}

function parse(out: string): BenchResult {
  const processed = /number of transactions actually processed: (\d+)/.exec(out);
  const failed = /number of failed transactions: (\d+)/.exec(out);
  assert.ok(processed, `pgbench printed no processed count:\n${out}`);
  assert.ok(failed, `pgbench printed no failed count:\n${out}`);
  return { processed: Number(processed[1]), failed: Number(failed[1]) };
}

async function bench(extra: string[]): Promise<BenchResult> {
  const r = await pgbench(['-n', '-c', String(CLIENTS), '-j', String(THREADS), '-t', String(TX), ...extra]);
  assert.equal(r.code, 0, `pgbench ${extra.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  const res = parse(r.stdout);
  assert.equal(res.failed, 0, `failed transactions with ${extra.join(' ')}:\n${r.stdout}\n${r.stderr}`);
  assert.equal(res.processed, CLIENTS * TX, `processed count with ${extra.join(' ')}`);
  return res;
}

test('pgbench -i initializes the tables through pgshift', async () => {
  const r = await pgbench(['-i', '-s', '1', '-q']);
  assert.equal(r.code, 0, r.stderr);
  const [row] = await pg.query<{ a: string; b: string; t: string }>(
    'SELECT (SELECT count(*) FROM pgbench_accounts) AS a, (SELECT count(*) FROM pgbench_branches) AS b, (SELECT count(*) FROM pgbench_tellers) AS t',
  );
  assert.deepEqual(row, { a: '100000', b: '1', t: '10' });
});

test('pgbench -S (select only) with -M simple, extended and prepared: zero failed transactions', async () => {
  for (const mode of ['simple', 'extended', 'prepared']) await bench(['-S', '-M', mode]);
});

test('pgbench TPC-B with -M simple, extended and prepared: zero failures and balanced tables', async () => {
  const modes = ['simple', 'extended', 'prepared'];
  for (const mode of modes) await bench(['-M', mode]);
  const [row] = await pg.query<{ a: string; b: string; t: string; d: string; n: string }>(
    `SELECT (SELECT sum(abalance) FROM pgbench_accounts) AS a, (SELECT sum(bbalance) FROM pgbench_branches) AS b,
            (SELECT sum(tbalance) FROM pgbench_tellers) AS t, (SELECT sum(delta) FROM pgbench_history) AS d,
            (SELECT count(*) FROM pgbench_history) AS n`,
  );
  assert.equal(Number(row.n), CLIENTS * TX * modes.length, 'one history row per transaction');
  assert.equal(row.a, row.d, 'sum(abalance) = sum(delta)');
  assert.equal(row.b, row.d, 'sum(bbalance) = sum(delta)');
  assert.equal(row.t, row.d, 'sum(tbalance) = sum(delta)');
  // At most pool-size server connections were used for the pgshift user.
  const [conns] = await pg.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'postgres' AND backend_type = 'client backend' AND pid <> pg_backend_pid()");
  assert.ok(Number(conns.n) <= 3, `pool of 3 respected, saw ${conns.n} server connections`);
});
