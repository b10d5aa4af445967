/**
 * `pgshift demo`: the playground. Starts a throwaway source PostgreSQL and a 2-shard destination,
 * loads sample data, runs an application workload through pgshift, runs RESHARD (schema sync,
 * consistent copy, streaming, automatic cutover) while showing progress, then prints the
 * measured pause, the errors the application saw and a source/destination comparison. Removes
 * everything at the end (`--stay` keeps it running for exploration until Ctrl-C).
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalPostgres, freePort } from './local-postgres.js';
import { parseConfig } from '../config/index.js';
import { ProxyServer } from '../proxy.js';
import { createLogger } from '../observe/log.js';
import { ServerConnection } from '../backend/server.js';
import { startWorkload, percentile } from './playground-workload.js';
import { asPgError } from '../wire/pg-error.js';

const CUSTOMERS = 20_000;
const ORDERS = 200_000;

interface ProgressTask {
  id: number;
  type: string;
  status: string;
  innerStatus: string;
  lagBytes: number;
  tables: { rows: number; estimatedRows: number }[];
}

export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { port: { type: 'string', default: '6432' }, stay: { type: 'boolean', default: false }, clients: { type: 'string', default: '4' } },
  });
  const out = (s: string) => process.stdout.write(s + '\n');
  const t0 = Date.now();
  const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`;
  out('pgshift playground: a live database resharded from 1 to 2 shards under load.');
  out(`${stamp()} starting a throwaway source PostgreSQL and a destination cluster for 2 shards …`);
  const [source, dest] = await Promise.all([LocalPostgres.start(), LocalPostgres.start()]);
  const stateDir = mkdtempSync(join(tmpdir(), 'pgshift-demo-state-'));
  let proxy: ProxyServer | null = null;
  const cleanup = async () => {
    if (proxy) await proxy.shutdown().catch(() => undefined);
    source.stopSync();
    dest.stopSync();
    rmSync(stateDir, { recursive: true, force: true });
  };
  const onSignal = () => void cleanup().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await source.sql('CREATE DATABASE shop');
    await dest.sql('CREATE DATABASE shop_0');
    await dest.sql('CREATE DATABASE shop_1');
    await source.sql(
      `CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, orders_count int NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now());
       CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, amount numeric(10,2) NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
       CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
       INSERT INTO customers (id, email) SELECT g, 'customer' || g || '@example.com' FROM generate_series(1, ${CUSTOMERS}) g;
       INSERT INTO orders (id, customer_id, amount, status) SELECT g, 1 + g % ${CUSTOMERS}, (g % 1000) / 10.0, 'paid' FROM generate_series(1, ${ORDERS}) g;
       INSERT INTO countries VALUES ('fr', 'France'), ('jp', 'Japan'), ('br', 'Brazil');
       CREATE PUBLICATION shop_pub FOR TABLE customers, orders, countries;`,
      'shop',
    );
    out(`${stamp()} source loaded: ${CUSTOMERS} customers, ${ORDERS} orders, 3 countries`);

    const port = await pickPort(Number(values.port));
    const httpPort = await freePort();
    const db = (name: string, pg: LocalPostgres, database: string, shard = 0) => `[[databases]]\nname = "${name}"\nhost = "127.0.0.1"\nport = ${pg.port}\ndatabase_name = "${database}"\nshard = ${shard}\n`;
    const config = parseConfig(
      `[general]\nhost = "127.0.0.1"\nport = ${port}\nhttp_port = ${httpPort}\ndefault_pool_size = 8\ncutover_timeout = 30000\ncutover_traffic_stop_threshold = 65536\n\n` +
        db('shop', source, 'shop') +
        db('shop_sharded', dest, 'shop_0', 0) +
        db('shop_sharded', dest, 'shop_1', 1) +
        `\n[[sharded_tables]]\ndatabase = "shop_sharded"\nname = "customers"\ncolumn = "id"\ndata_type = "bigint"\n` +
        `\n[[sharded_tables]]\ndatabase = "shop_sharded"\nname = "orders"\ncolumn = "id"\ndata_type = "bigint"\n` +
        `\n[[omnisharded_tables]]\ndatabase = "shop_sharded"\ntables = ["countries"]\n` +
        `\n[admin]\npassword = "admin"\n`,
      ['shop', 'shop_sharded'].map((d) => `[[users]]\nname = "app"\ndatabase = "${d}"\npassword = "app"\nserver_user = "postgres"\nserver_password = "postgres"\n`).join('\n'),
      {},
      {},
    );
    proxy = new ProxyServer(config, { log: createLogger(process.env.PGSHIFT_LOG ?? 'error'), stateDir });
    await proxy.start();
    out(`${stamp()} pgshift is serving database "shop" on 127.0.0.1:${port} (progress: http://127.0.0.1:${httpPort}/progress)`);

    const workload = await startWorkload(port, Number(values.clients), CUSTOMERS);
    out(`${stamp()} application started: ${values.clients} clients inserting, reading and updating through pgshift`);
    await sleep(1500);

    const admin = await ServerConnection.connect({ host: '127.0.0.1', port, user: 'admin', password: 'admin', database: 'admin', connectTimeout: 10_000 });
    const started = await admin.query('RESHARD shop shop_sharded shop_pub');
    const taskId = Number(started.rows[0][0]);
    out(`${stamp()} RESHARD shop shop_sharded shop_pub -> task ${taskId}`);

    // Live progress until the cutover has happened.
    let last = '';
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline) {
      const p = (await proxy.progress()) as { tasks: ProgressTask[] };
      const task = p.tasks.find((t) => t.id === taskId);
      if (!task) break;
      const rows = task.tables.reduce((a, t) => a + t.rows, 0);
      const total = task.tables.reduce((a, t) => a + t.estimatedRows, 0);
      const line = `task ${taskId}: ${task.status}${task.innerStatus ? ` (${task.innerStatus})` : ''}; copied ${rows.toLocaleString('en')}${total ? ` of ~${total.toLocaleString('en')}` : ''} rows; lag ${task.lagBytes} B; app ${workload.stats.ops.toLocaleString('en')} ops, ${workload.stats.errors.length} errors`;
      if (line !== last) out(`${stamp()} ${line}`);
      last = line;
      if (proxy.cutovers.last?.taskId === taskId || task.status.startsWith('failed')) break;
      await sleep(500);
    }
    const cut = proxy.cutovers.last;
    if (!cut || cut.taskId !== taskId) throw new Error(`the reshard did not cut over: ${last}`);
    out(`${stamp()} CUTOVER done: traffic paused for ${cut.pauseMs} ms (steps: ${Object.entries(cut.steps).map(([k, v]) => `${k} ${v} ms`).join(', ')}); reverse replication task ${cut.reverseTaskId} keeps the old cluster in sync for a rollback`);
    await sleep(2000);
    await workload.stop();
    admin.destroy();
    const lat = workload.stats.latencies;
    out(`${stamp()} application stopped: ${workload.stats.ops.toLocaleString('en')} operations, ${workload.stats.errors.length} errors; request latency p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms`);
    for (const e of workload.stats.errors.slice(0, 5)) out(`    error: ${e}`);

    // Compare: the new cluster (now serving) against the old one (kept in sync by the reverse stream).
    await sleep(1500);
    let same = true;
    out(`${stamp()} comparing the source (old) with the 2 shards (new):`);
    for (const table of ['customers', 'orders', 'countries']) {
      const q = `SELECT count(*), coalesce(sum(hashtext(t::text)::bigint), 0) FROM ${table} t`;
      const [o] = (await source.sql(q, 'shop')) as string[][];
      const shards = await Promise.all(['shop_0', 'shop_1'].map((d) => dest.sql(q, d) as Promise<string[][]>));
      const omni = table === 'countries';
      const n = omni ? Number(shards[0][0][0]) : shards.reduce((a, s) => a + Number(s[0][0]), 0);
      const sum = omni ? BigInt(shards[0][0][1]) : shards.reduce((a, s) => a + BigInt(s[0][1]), 0n);
      const ok = Number(o[0]) === n && BigInt(o[1]) === sum && (!omni || shards.every((s) => s[0][0] === o[0]));
      same &&= ok;
      out(`    ${table.padEnd(10)} source ${o[0].padStart(7)} rows | shards ${shards.map((s) => s[0][0]).join(' + ')}${omni ? ' (copy on each)' : ''} | ${ok ? 'identical' : 'DIFFERENT'}`);
    }
    const acked = workload.stats.acked.length;
    const onNew = (await Promise.all(['shop_0', 'shop_1'].map((d) => dest.sql('SELECT count(*) FROM orders WHERE id >= 10000000', d)))).reduce((a, r) => a + Number(r[0][0]), 0);
    out(`    acknowledged application orders: ${acked}; present on the new cluster: ${onNew}`);
    const ok = same && onNew === acked && workload.stats.errors.length === 0;
    out(`${stamp()} ${ok ? 'RESULT: resharded under load with no client error and no lost write.' : 'RESULT: something differs; see above.'}`);
    if (values.stay) {
      out(`\npgshift keeps serving: psql "postgresql://app:app@127.0.0.1:${port}/shop"  ·  admin: psql "postgresql://admin:admin@127.0.0.1:${port}/admin" -c "SHOW TASKS"\nPress Ctrl-C to stop and remove everything.`);
      await new Promise<void>((r) => {
        process.once('SIGINT', r);
        process.once('SIGTERM', r);
      });
    }
    return ok ? 0 : 1;
  } catch (err) {
    out(`playground failed: ${asPgError(err).message}`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

async function pickPort(wanted: number): Promise<number> {
  const net = await import('node:net');
  const free = await new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(wanted, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  if (free) return wanted;
  const p = await freePort();
  process.stdout.write(`port ${wanted} is busy; using ${p}\n`);
  return p;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
