/**
 * Cutover benchmark: the client-visible pause of a CUTOVER under pgbench load through pgshift,
 * beside PgBouncer's PAUSE/RESUME of the same load, in one invocation.
 *
 * pgshift: a source PostgreSQL with pgbench tables, a destination cluster (1 and/or 2 shards, the
 * accounts table sharded by aid), `COPY_DATA` until the task replicates, then pgbench through
 * pgshift and a `CUTOVER` in the middle of the run. PgBouncer (transaction mode) in front of the
 * source gets the same load and a `PAUSE`, a sleep (pgshift's measured pause, or none) and a
 * `RESUME`. pgbench's per-transaction logs give each transaction's start and end, so we take the
 * latencies of the transactions that overlapped the switch (max, p99) and of the whole run.
 *
 *   node dist/bench/cutover.js [--seconds 20] [--shards 2,1] [--quick] ...   (--help for all)
 */
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { writeFileSync, readdirSync, readFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { LocalPostgres, freePort, SUPERUSER, SUPERUSER_PASSWORD } from '../src/cli/local-postgres.js';
import { ServerConnection } from '../src/backend/server.js';
import { pgbenchInit, pgbenchRun, type Endpoint, type PgbenchResult } from './lib/pgbench.js';
import { pgbouncerBinary } from './lib/pgbouncer.js';
import { startTracked, tempDir, waitForPort, isRoot, osUser, type Tracked } from './lib/children.js';
import { formatTable, formatMarkdown } from './lib/table.js';

const HELP = `cutover benchmark: client-visible pause of pgshift's CUTOVER vs PgBouncer PAUSE/RESUME under pgbench

options:
  --seconds N        pgbench -T per run (the switch happens at --at of it)   default 20
  --at F             when to switch, as a fraction of the run                default 0.5
  --clients N        pgbench -c                                              default 8
  --threads N        pgbench -j                                              default 2
  --pool-size N      server connections per pooler (per shard for pgshift)   default 8
  --scale N          pgbench -i -s                                           default 10
  --protocol P       pgbench -M: simple, extended or prepared                default extended
                     (PgBouncer 1.18 cannot run prepared in transaction mode; it is skipped then)
  --shards LIST      destination shard counts to cut over to, e.g. 2,1     default 2,1
  --no-pgbouncer     pgshift only
  --quick            --seconds 8 --scale 2 (a smoke run)
  --markdown         also print the results as Markdown tables`;

interface Settings {
  seconds: number;
  at: number;
  clients: number;
  threads: number;
  poolSize: number;
  scale: number;
  protocol: 'simple' | 'extended' | 'prepared';
  shards: number[];
  pgbouncer: boolean;
  markdown: boolean;
}

function int(flag: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer ≥ ${min} (got "${v}")`);
  return n;
}

function parseSettings(argv: string[]): Settings | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      at: { type: 'string' },
      clients: { type: 'string' },
      threads: { type: 'string' },
      'pool-size': { type: 'string' },
      scale: { type: 'string' },
      protocol: { type: 'string' },
      shards: { type: 'string' },
      'no-pgbouncer': { type: 'boolean' },
      quick: { type: 'boolean' },
      markdown: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const quick = values.quick === true;
  const protocol = values.protocol ?? 'extended';
  if (protocol !== 'simple' && protocol !== 'extended' && protocol !== 'prepared') throw new Error(`--protocol must be simple, extended or prepared (got "${protocol}")`);
  const at = values.at === undefined ? 0.5 : Number(values.at);
  if (!(at > 0 && at < 1)) throw new Error(`--at must be a fraction between 0 and 1 (got "${values.at}")`);
  const shards = (values.shards ?? '2,1').split(',').map((x) => int('shards', x.trim(), 1));
  const s: Settings = {
    seconds: int('seconds', values.seconds, quick ? 8 : 20, 4),
    at,
    clients: int('clients', values.clients, 8),
    threads: int('threads', values.threads, 2),
    poolSize: int('pool-size', values['pool-size'], 8),
    scale: int('scale', values.scale, quick ? 2 : 10),
    protocol,
    shards,
    pgbouncer: values['no-pgbouncer'] !== true,
    markdown: values.markdown === true,
  };
  if (s.clients % s.threads !== 0) throw new Error(`--clients (${s.clients}) must be a multiple of --threads (${s.threads}), as pgbench requires`);
  return s;
}

// ---------------------------------------------------------------------------------------------
// pgbench with per-transaction logs

/** One transaction from pgbench's --log: when it ended (ms since the epoch) and its latency. */
interface Tx {
  endMs: number;
  latencyMs: number;
}

interface LoggedRun {
  result: PgbenchResult;
  txs: Tx[];
  /** Transactions the log marks as failed or skipped, plus clients pgbench aborted. */
  errors: number;
  errorLines: string[];
}

/** The workload: a read-write transaction on one account, keyed by aid (the shard key). */
function writeScript(dir: string, scale: number): string {
  const file = join(dir, 'account-rw.sql');
  writeFileSync(
    file,
    [
      `\\set aid random(1, ${100000 * scale})`,
      '\\set delta random(-5000, 5000)',
      'BEGIN;',
      'UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;',
      'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;',
      'END;',
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o644);
  return file;
}

/** Runs pgbench with --log and calls `during` once the run is `atMs` in; parses the logs. */
async function runLogged(ep: Endpoint, s: Settings, script: string, during: () => Promise<void>): Promise<LoggedRun> {
  const dir = tempDir('pgshift-bench-txlog-');
  const prefix = join(dir, 'tx');
  const run = pgbenchRun(ep, { name: 'account-rw', args: ['-f', script, '-M', s.protocol, '--log', `--log-prefix=${prefix}`] }, { clients: s.clients, threads: s.threads, seconds: s.seconds });
  let duringErr: unknown = null;
  const timer = new Promise<void>((resolve) =>
    setTimeout(() => {
      during().catch((e) => (duringErr = e)).finally(resolve);
    }, s.seconds * s.at * 1000),
  );
  const [result] = await Promise.all([run, timer]);
  if (duringErr) throw duringErr;
  const txs: Tx[] = [];
  let errors = 0;
  for (const f of readdirSync(dir).filter((n) => n.startsWith('tx.'))) {
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      // client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]
      const p = line.split(' ');
      if (p.length < 6) continue;
      if (p[2] === 'failed' || p[2] === 'skipped') {
        errors++;
        continue;
      }
      txs.push({ latencyMs: Number(p[2]) / 1000, endMs: Number(p[4]) * 1000 + Number(p[5]) / 1000 });
    }
  }
  const errorLines = result.raw.split('\n').filter((l) => /aborted in command|ERROR|FATAL/.test(l));
  errors += result.raw.split('\n').filter((l) => /client \d+ aborted/.test(l)).length;
  if (result.aborted && errors === 0) errors = 1;
  return { result, txs, errors, errorLines };
}

// ---------------------------------------------------------------------------------------------
// Figures

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

interface Figures {
  label: string;
  detail: string;
  tx: number;
  errors: number;
  /** The switch as the server reports it (pgshift pause_ms; PgBouncer: PAUSE sent → RESUME done). */
  switchMs: number;
  inWindow: number;
  winP50: number;
  winP99: number;
  winMax: number;
  p50: number;
  p99: number;
  max: number;
  firstError: string;
}

/** Latencies of the transactions that were in flight at some point of [from, to], and of the run. */
function figures(label: string, detail: string, run: LoggedRun, from: number, to: number, switchMs: number): Figures {
  const all = run.txs.map((t) => t.latencyMs).sort((a, b) => a - b);
  if (process.env.PGSHIFT_BENCH_DEBUG) {
    const near = run.txs.filter((t) => t.endMs >= from - 50 && t.endMs - t.latencyMs <= to + 1000).sort((a, b) => a.endMs - b.endMs);
    console.log(`${label} ${detail}: window ${to - from} ms; transactions near it (start, end relative to window start; latency):`);
    console.log(near.filter((t) => t.latencyMs > 10).map((t) => `${(t.endMs - t.latencyMs - from).toFixed(0)}..${(t.endMs - from).toFixed(0)}:${t.latencyMs.toFixed(0)}`).join(' '));
  }
  const win = run.txs.filter((t) => t.endMs >= from && t.endMs - t.latencyMs <= to).map((t) => t.latencyMs).sort((a, b) => a - b);
  return {
    label,
    detail,
    tx: run.txs.length,
    errors: run.errors,
    switchMs,
    inWindow: win.length,
    winP50: pct(win, 50),
    winP99: pct(win, 99),
    winMax: win.length ? win[win.length - 1] : NaN,
    p50: pct(all, 50),
    p99: pct(all, 99),
    max: all.length ? all[all.length - 1] : NaN,
    firstError: run.errorLines[0]?.trim().slice(0, 160) ?? run.result.firstError ?? '',
  };
}

const f1 = (n: number) => (Number.isNaN(n) ? 'n/a' : n.toFixed(1));

// ---------------------------------------------------------------------------------------------
// pgshift

const MAIN_JS = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ADMIN_PASSWORD = 'bench-admin';

function pgshiftConfig(port: number, httpPort: number, src: LocalPostgres, dst: LocalPostgres, dbs: string[], poolSize: number): { config: string; users: string } {
  const db = (name: string, pg: LocalPostgres, dbname: string, shard?: number) =>
    ['[[databases]]', `name = "${name}"`, 'host = "127.0.0.1"', `port = ${pg.port}`, `database_name = "${dbname}"`, ...(shard === undefined ? [] : [`shard = ${shard}`]), ''].join('\n');
  const config = [
    '[general]',
    'host = "127.0.0.1"',
    `port = ${port}`,
    `http_port = ${httpPort}`,
    `default_pool_size = ${poolSize}`,
    'min_pool_size = 1',
    'pooler_mode = "transaction"',
    'auth_type = "md5"',
    'shutdown_timeout = 2000',
    'cutover_timeout = 30000',
    'cutover_grace_period = 3000',
    '',
    db('bench', src, 'bench'),
    ...dbs.map((d, i) => db('bench_new', dst, d, dbs.length > 1 ? i : undefined)),
    ...(dbs.length > 1 ? ['[[sharded_tables]]', 'database = "bench_new"', 'name = "pgbench_accounts"', 'column = "aid"', 'data_type = "integer"', ''] : []),
    '[admin]',
    `password = "${ADMIN_PASSWORD}"`,
    '',
  ].join('\n');
  const users = ['bench', 'bench_new']
    .map((d) => ['[[users]]', `name = "${SUPERUSER}"`, `database = "${d}"`, `password = "${SUPERUSER_PASSWORD}"`, `server_user = "${SUPERUSER}"`, `server_password = "${SUPERUSER_PASSWORD}"`, ''].join('\n'))
    .join('\n');
  return { config, users };
}

async function query(conn: ServerConnection, sql: string): Promise<Record<string, string | null>[]> {
  const r = await conn.query(sql);
  return r.rows.map((row) => Object.fromEntries(r.fields.map((f, i) => [f, row[i]])));
}

async function waitReplicating(admin: ServerConnection, taskId: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const row = (await query(admin, 'SHOW TASKS')).find((r) => Number(r.id) === taskId);
    if (row?.inner_status === 'replicating') return;
    if (row && /^(failed|cancelled)/.test(row.status ?? '')) throw new Error(`COPY_DATA task ${taskId} ${row.status}`);
    if (Date.now() > end) throw new Error(`task ${taskId} not replicating after ${timeoutMs} ms: ${JSON.stringify(row)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function pgshiftRun(src: LocalPostgres, dst: LocalPostgres, shards: number, s: Settings, script: string, ep: Endpoint): Promise<{ fig: Figures; pauseMs: number; steps: string }> {
  const dbs = Array.from({ length: shards }, (_, i) => `bench_s${shards}_${i}`);
  for (const d of dbs) await dst.sql(`CREATE DATABASE ${d}`);
  const dir = tempDir('pgshift-bench-cutover-');
  const port = await freePort();
  const httpPort = await freePort();
  const { config, users } = pgshiftConfig(port, httpPort, src, dst, dbs, s.poolSize);
  writeFileSync(join(dir, 'pgshift.toml'), config);
  writeFileSync(join(dir, 'users.toml'), users);
  const proc: Tracked = startTracked(process.execPath, [MAIN_JS, 'serve', '--config', join(dir, 'pgshift.toml'), '--users', join(dir, 'users.toml')], {
    env: { ...process.env, PGSHIFT_LOG: process.env.PGSHIFT_LOG ?? 'warn' },
  });
  let admin: ServerConnection | null = null;
  try {
    await waitForPort('127.0.0.1', port, proc);
    admin = await ServerConnection.connect({ host: '127.0.0.1', port, user: 'admin', password: ADMIN_PASSWORD, database: 'admin', connectTimeout: 10_000 });
    const t0 = Date.now();
    const taskId = Number((await query(admin, 'COPY_DATA bench bench_new bench_pub'))[0].task_id);
    await waitReplicating(admin, taskId, 600_000);
    console.log(`  ${shards} shard(s): COPY_DATA task ${taskId} replicating after ${((Date.now() - t0) / 1000).toFixed(1)} s; pgbench through pgshift, CUTOVER at ${(s.seconds * s.at).toFixed(0)} s`);
    let from = 0;
    let to = 0;
    let pauseMs = NaN;
    let steps: Record<string, number> = {};
    const run = await runLogged({ ...ep, port }, s, script, async () => {
      const start = Date.now();
      const row = (await query(admin!, `CUTOVER ${taskId}`))[0];
      const end = Date.now();
      pauseMs = Number(row.pause_ms);
      const prog = (await (await fetch(`http://127.0.0.1:${httpPort}/progress`)).json()) as { lastCutover?: { steps: Record<string, number> } };
      steps = prog.lastCutover?.steps ?? {};
      // The gate closed once the lag check (wait_lag) was done, and stayed closed pause_ms.
      from = start + (steps.wait_lag ?? 0);
      to = Math.min(end, from + pauseMs);
    });
    // The load really moved: the logical database is now served by the destination.
    const check = await ServerConnection.connect({ ...ep, port, connectTimeout: 10_000 });
    const served = (await check.query('SELECT current_database()')).rows[0][0];
    check.destroy();
    if (!served || !dbs.includes(served)) throw new Error(`after CUTOVER, "bench" is served by database ${served}, not the destination (${dbs.join(', ')})`);
    if (process.env.PGSHIFT_BENCH_DEBUG) {
      for (const d of dbs) {
        console.log(d, JSON.stringify(await dst.sql("SELECT indexname FROM pg_indexes WHERE tablename = 'pgbench_accounts'", d)));
        console.log(d, JSON.stringify(await dst.sql("SELECT relname, n_live_tup, n_dead_tup, last_autovacuum, last_autoanalyze, seq_scan, idx_scan FROM pg_stat_user_tables", d)));
      }
    }
    const stepText = Object.entries(steps).map(([k, v]) => `${k} ${v}`).join(', ');
    const fig = figures(`pgshift CUTOVER → ${shards} shard${shards > 1 ? 's' : ''}`, 'gate closed', run, from, to, pauseMs);
    return { fig, pauseMs, steps: stepText };
  } catch (err) {
    throw new Error(`${(err as Error).message}\npgshift output:\n${proc.output()}`);
  } finally {
    admin?.destroy();
    await proc.stop(15_000);
  }
}

// ---------------------------------------------------------------------------------------------
// PgBouncer (our own config: the admin console needs admin_users)

async function startPgBouncerAdmin(pg: LocalPostgres, poolSize: number): Promise<{ port: number; version: string; stop(): Promise<void> }> {
  const bin = pgbouncerBinary();
  const dir = tempDir('pgshift-bench-pgbouncer-');
  const port = await freePort();
  const userlist = join(dir, 'userlist.txt');
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(userlist, `"${SUPERUSER}" "${SUPERUSER_PASSWORD}"\n`);
  writeFileSync(
    ini,
    [
      '[databases]',
      `bench = host=127.0.0.1 port=${pg.port} dbname=bench`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = md5',
      `auth_file = ${userlist}`,
      `admin_users = ${SUPERUSER}`,
      'pool_mode = transaction',
      `default_pool_size = ${poolSize}`,
      'min_pool_size = 0',
      'reserve_pool_size = 0',
      'max_client_conn = 1000',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      'log_stats = 0',
      '',
    ].join('\n'),
  );
  for (const f of [userlist, ini]) chmodSync(f, 0o644);
  const ids = isRoot ? osUser(process.env.PGSHIFT_PG_OS_USER ?? 'postgres') : {};
  const proc = startTracked(bin, [ini], { ...ids, cwd: dir });
  await waitForPort('127.0.0.1', port, proc);
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0].trim();
  return { port, version, stop: () => proc.stop() };
}

async function pgbouncerRun(port: number, delayMs: number, s: Settings, script: string, ep: Endpoint): Promise<Figures> {
  const admin = await ServerConnection.connect({ host: '127.0.0.1', port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'pgbouncer', connectTimeout: 10_000 });
  try {
    let from = 0;
    let to = 0;
    const run = await runLogged({ ...ep, port }, s, script, async () => {
      from = Date.now();
      await admin.query('PAUSE bench'); // returns once every server connection is released
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      await admin.query('RESUME bench');
      to = Date.now();
    });
    return figures('PgBouncer PAUSE/RESUME', delayMs > 0 ? `sleep ${delayMs} ms` : 'no sleep', run, from, to, to - from);
  } finally {
    admin.destroy();
  }
}

// ---------------------------------------------------------------------------------------------

function report(figs: Figures[], s: Settings, notes: string[]): void {
  const head = ['run', 'switch', 'switch ms', 'tx', 'errors', 'tx in switch', 'switch p50 ms', 'switch p99 ms', 'switch max ms', 'run p50 ms', 'run p99 ms', 'run max ms'];
  const rows = figs.map((f) => [f.label, f.detail, f1(f.switchMs), String(f.tx), String(f.errors), String(f.inWindow), f1(f.winP50), f1(f.winP99), f1(f.winMax), f1(f.p50), f1(f.p99), f1(f.max)]);
  console.log(`\nResults\n\n${formatTable(head, rows)}\n`);
  const bouncer = figs.filter((f) => f.label.startsWith('PgBouncer'));
  const ratioHead = ['pgshift run', 'vs PgBouncer', 'switch p99 ratio', 'switch max ratio'];
  const ratioRows: string[][] = [];
  for (const p of figs.filter((f) => f.label.startsWith('pgshift'))) {
    for (const b of bouncer) ratioRows.push([p.label, b.detail, (p.winP99 / b.winP99).toFixed(2), (p.winMax / b.winMax).toFixed(2)]);
  }
  if (ratioRows.length) console.log(`Ratios (pgshift / PgBouncer)\n\n${formatTable(ratioHead, ratioRows)}\n`);
  for (const p of figs.filter((f) => f.label.startsWith('pgshift'))) {
    const ok = p.winP99 < 100 && p.winMax < 500 && p.errors === 0;
    console.log(`goal (${p.label}): switch p99 ${f1(p.winP99)} ms < 100, max ${f1(p.winMax)} ms < 500, errors ${p.errors} = 0 → ${ok ? 'MET' : 'NOT MET'}`);
  }
  for (const f of figs) if (f.errors) console.log(`errors in ${f.label} (${f.detail}): first: ${f.firstError}`);
  for (const n of notes) console.log(n);
  const c = cpus();
  console.log(
    [
      '',
      `machine: ${c.length} CPU(s) (${c[0]?.model.trim() ?? 'unknown'}), Node ${process.version}, load average now ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      `pgbench -c ${s.clients} -j ${s.threads} -T ${s.seconds} -M ${s.protocol}, switch at ${(s.seconds * s.at).toFixed(1)} s, scale ${s.scale}, pool size ${s.poolSize}`,
      'workload: BEGIN; UPDATE pgbench_accounts (by aid); SELECT abalance (by aid); END  — random aid',
      '"tx in switch": transactions in flight at some point while the gate was closed (pgshift: from the end of',
      'the lag check for pause_ms; PgBouncer: from sending PAUSE until RESUME returned); their latency is what a client saw.',
    ].join('\n'),
  );
  if (s.markdown) console.log(`\n${formatMarkdown(head, rows)}\n${ratioRows.length ? `\n${formatMarkdown(ratioHead, ratioRows)}\n` : ''}`);
}

export async function main(argv: string[]): Promise<number> {
  const s = parseSettings(argv);
  if (!s) return 0;
  console.log('starting PostgreSQL (source and destination) ...');
  const src = await LocalPostgres.start({ settings: { max_connections: 200 } });
  const dst = await LocalPostgres.start({ settings: { max_connections: 200 } });
  const servers: { stop(): Promise<void> }[] = [];
  try {
    await src.sql('CREATE DATABASE bench');
    const ep: Endpoint = { host: '127.0.0.1', port: src.port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'bench' };
    console.log(`pgbench -i -s ${s.scale} ...`);
    await pgbenchInit(ep, s.scale);
    // pgbench_history has no primary key (and the workload does not write it): not published.
    await src.sql('CREATE PUBLICATION bench_pub FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers', 'bench');
    const script = writeScript(tempDir('pgshift-bench-script-'), s.scale);
    const figs: Figures[] = [];
    const notes: string[] = [];
    let pause = NaN;
    for (const n of s.shards) {
      const r = await pgshiftRun(src, dst, n, s, script, ep);
      figs.push(r.fig);
      notes.push(`pgshift → ${n} shard(s): pause_ms ${r.pauseMs}; steps (ms): ${r.steps}`);
      if (Number.isNaN(pause)) pause = r.pauseMs;
      console.log(`  → pause_ms ${r.pauseMs}, switch max ${f1(r.fig.winMax)} ms, errors ${r.fig.errors}`);
    }
    if (s.pgbouncer && s.protocol === 'prepared') notes.push('PgBouncer skipped: 1.18 cannot keep protocol-level prepared statements in transaction mode.');
    else if (s.pgbouncer) {
      await src.sql('VACUUM ANALYZE pgbench_accounts', 'bench');
      const b = await startPgBouncerAdmin(src, s.poolSize);
      servers.push(b);
      notes.push(`${b.version}, transaction mode, pool size ${s.poolSize}, in front of the source PostgreSQL.`);
      for (const delay of Number.isNaN(pause) ? [0] : [Math.max(0, Math.round(pause)), 0]) {
        console.log(`  PgBouncer (port ${b.port}): PAUSE, sleep ${delay} ms, RESUME at ${(s.seconds * s.at).toFixed(0)} s`);
        const f = await pgbouncerRun(b.port, delay, s, script, ep);
        figs.push(f);
        console.log(`  → switch ${f1(f.switchMs)} ms, switch max ${f1(f.winMax)} ms, errors ${f.errors}`);
      }
    }
    report(figs, s, notes);
    return figs.some((f) => f.errors > 0) ? 1 : 0;
  } finally {
    for (const srv of servers.reverse()) await srv.stop().catch((err) => console.error(`stopping a server failed: ${(err as Error).message}`));
    await src.stop();
    await dst.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err instanceof Error ? (process.env.PGSHIFT_BENCH_DEBUG ? err.stack : err.message) : err);
      process.exit(1);
    },
  );
}
