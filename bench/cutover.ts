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
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalPostgres, freePort, SUPERUSER, SUPERUSER_PASSWORD } from '../src/cli/local-postgres.js';
import { ServerConnection } from '../src/backend/server.js';
import { pgbenchInit, type Endpoint } from './lib/pgbench.js';
import { runLogged, figures, summarize, f1, type Figures } from './lib/switch-latency.js';
import { startPgBouncer, type PgBouncer } from './lib/pgbouncer.js';
import { startTracked, tempDir, waitForPort, type Tracked } from './lib/children.js';
import { formatTable, formatMarkdown } from './lib/table.js';
import { intOption } from './lib/options.js';

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
  --rounds N         repeat everything N times; also print medians        default 1
  --no-pgbouncer     pgshift only
  --timeline         print latency per 100 ms around each switch
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
  rounds: number;
  timeline: boolean;
  markdown: boolean;
}

const int = intOption;

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
      rounds: { type: 'string' },
      timeline: { type: 'boolean' },
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
    rounds: int('rounds', values.rounds, 1),
    timeline: values.timeline === true,
    markdown: values.markdown === true,
  };
  if (s.clients % s.threads !== 0) throw new Error(`--clients (${s.clients}) must be a multiple of --threads (${s.threads}), as pgbench requires`);
  return s;
}

function pgbenchArgs(s: Settings, script: string): string[] {
  return ['-f', script, '-M', s.protocol];
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

async function pgshiftRun(src: LocalPostgres, dst: LocalPostgres, shards: number, round: number, s: Settings, script: string, ep: Endpoint): Promise<{ fig: Figures; pauseMs: number; steps: string }> {
  const dbs = Array.from({ length: shards }, (_, i) => `bench_r${round}_s${shards}_${i}`);
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
    const run = await runLogged({ ...ep, port }, s, pgbenchArgs(s, script), async () => {
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
    const lastEnd = run.txs.reduce((m, t) => Math.max(m, t.endMs), 0);
    if (to + 1000 > lastEnd) console.log(`  warning: the cutover waited ${steps.wait_lag} ms for replication lag and ended less than 1 s before pgbench did; its figures are partial (try more --seconds or a smaller --at)`);
    const stepText = Object.entries(steps).map(([k, v]) => `${k} ${v}`).join(', ');
    const fig = figures(`pgshift CUTOVER → ${shards} shard${shards > 1 ? 's' : ''}`, 'gate closed', round, run, from, to, pauseMs);
    return { fig, pauseMs, steps: stepText };
  } catch (err) {
    throw new Error(`${(err as Error).message}\npgshift output:\n${proc.output()}`);
  } finally {
    admin?.destroy();
    await proc.stop(15_000);
  }
}

// ---------------------------------------------------------------------------------------------
// PgBouncer, with its admin console open to the superuser for PAUSE / RESUME

async function startPgBouncerAdmin(pg: LocalPostgres, poolSize: number): Promise<PgBouncer> {
  return startPgBouncer({
    listenPort: await freePort(),
    database: { name: 'bench', host: '127.0.0.1', port: pg.port, dbname: 'bench' },
    user: SUPERUSER,
    password: SUPERUSER_PASSWORD,
    poolSize,
    authType: 'md5',
    adminUsers: [SUPERUSER],
  });
}

async function pgbouncerRun(port: number, delayMs: number, round: number, s: Settings, script: string, ep: Endpoint): Promise<Figures> {
  const admin = await ServerConnection.connect({ host: '127.0.0.1', port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'pgbouncer', connectTimeout: 10_000 });
  try {
    let from = 0;
    let to = 0;
    const run = await runLogged({ ...ep, port }, s, pgbenchArgs(s, script), async () => {
      from = Date.now();
      await admin.query('PAUSE bench'); // returns once every server connection is released
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      await admin.query('RESUME bench');
      to = Date.now();
    });
    return figures('PgBouncer PAUSE/RESUME', delayMs > 0 ? 'sleep = pgshift pause' : 'no sleep', round, run, from, to, to - from);
  } finally {
    admin.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
const HEAD = ['run', 'switch', 'round', 'switch ms', 'errors', 'tx in pause', 'pause p50', 'pause max', 'excess', 'tx ±1 s', '±1 s p99', '±1 s max', 'run p50', 'run p99', 'run max', 'TPS before', 'TPS after'];

function row(f: Figures): string[] {
  const f0 = (n: number) => (Number.isNaN(n) ? 'n/a' : n.toFixed(0));
  return [f.label, f.detail, f.round ? String(f.round) : 'median', f0(f.switchMs), String(f.errors), f0(f.pauseN), f1(f.pauseP50), f1(f.pauseMax), f1(f.excess), f0(f.nearN), f1(f.nearP99), f1(f.nearMax), f1(f.p50), f1(f.p99), f1(f.max), f0(f.tpsBefore), f0(f.tpsAfter)];
}

function report(figs: Figures[], s: Settings, notes: string[]): void {
  const rows = figs.map(row);
  const summary = s.rounds > 1 ? summarize(figs) : figs;
  if (s.rounds > 1) rows.push(...summary.map(row));
  console.log(`\nResults (latencies in ms)\n\n${formatTable(HEAD, rows)}\n`);
  const bouncer = summary.filter((f) => f.label.startsWith('PgBouncer'));
  const ratioHead = ['pgshift', 'vs PgBouncer', 'pause max', 'excess', '±1 s p99', '±1 s max'];
  const ratioRows: string[][] = [];
  const shift = summary.filter((f) => f.label.startsWith('pgshift'));
  for (const p of shift) {
    for (const b of bouncer) ratioRows.push([p.label, b.detail, (p.pauseMax / b.pauseMax).toFixed(2), (p.excess / b.excess).toFixed(2), (p.nearP99 / b.nearP99).toFixed(2), (p.nearMax / b.nearMax).toFixed(2)]);
  }
  if (ratioRows.length) console.log(`Ratios pgshift / PgBouncer${s.rounds > 1 ? ' (medians over rounds)' : ''}\n\n${formatTable(ratioHead, ratioRows)}\n`);
  for (const p of shift) {
    const ok = p.nearP99 < 100 && p.nearMax < 500 && p.errors === 0;
    console.log(`goal (${p.label}${s.rounds > 1 ? ', medians' : ''}): p99 ±1 s ${f1(p.nearP99)} ms < 100, max ${f1(p.nearMax)} ms < 500, errors ${p.errors} = 0 → ${ok ? 'MET' : 'NOT MET'}`);
  }
  for (const f of figs) if (f.errors) console.log(`errors in ${f.label} (${f.detail}, round ${f.round}): first: ${f.firstError}`);
  for (const n of notes) console.log(n);
  if (s.timeline) {
    for (const f of figs) console.log(`\ntimeline of ${f.label} (${f.detail}, round ${f.round}), by transaction end, 0 = traffic paused, switch ${f.switchMs.toFixed(0)} ms:\n${f.timeline}`);
  }
  const c = cpus();
  console.log(
    [
      '',
      `machine: ${c.length} CPU(s) (${c[0]?.model.trim() ?? 'unknown'}), Node ${process.version}, load average now ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      `pgbench -c ${s.clients} -j ${s.threads} -T ${s.seconds} -M ${s.protocol}, switch at ${(s.seconds * s.at).toFixed(1)} s, scale ${s.scale}, pool size ${s.poolSize}, ${s.rounds} round(s)`,
      'workload: BEGIN; UPDATE pgbench_accounts (by aid); SELECT abalance (by aid); END  — random aid',
      'switch ms: traffic paused (pgshift: pause_ms, the gate closed from the end of the lag check; PgBouncer: PAUSE',
      '  sent until RESUME returned). "tx in pause": transactions in flight at some point of it; excess = pause max -',
      '  switch ms (the mechanism\'s own cost beyond the pause); "±1 s": from 1 s before the pause to 1 s after it.',
      '  TPS after: from 1 s after the pause to the end of the run. PgBouncer sleeps the first pgshift run\'s pause_ms.',
    ].join('\n'),
  );
  if (s.markdown) console.log(`\n${formatMarkdown(HEAD, rows)}\n${ratioRows.length ? `\n${formatMarkdown(ratioHead, ratioRows)}\n` : ''}`);
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
    const bouncer = s.pgbouncer && s.protocol !== 'prepared';
    if (s.pgbouncer && !bouncer) notes.push('PgBouncer skipped: 1.18 cannot keep protocol-level prepared statements in transaction mode.');
    let b: Awaited<ReturnType<typeof startPgBouncerAdmin>> | null = null;
    if (bouncer) {
      b = await startPgBouncerAdmin(src, s.poolSize);
      servers.push(b);
      notes.push(`${b.version}, transaction mode, pool size ${s.poolSize}, in front of the source PostgreSQL.`);
    }
    for (let round = 1; round <= s.rounds; round++) {
      if (s.rounds > 1) console.log(`round ${round}/${s.rounds}`);
      let pause = NaN;
      for (const n of s.shards) {
        const r = await pgshiftRun(src, dst, n, round, s, script, ep);
        figs.push(r.fig);
        notes.push(`round ${round}, pgshift → ${n} shard(s): pause_ms ${r.pauseMs}; steps (ms): ${r.steps}`);
        if (Number.isNaN(pause)) pause = r.pauseMs;
        console.log(`  → pause_ms ${r.pauseMs}, pause max ${f1(r.fig.pauseMax)} ms, ±1 s p99 ${f1(r.fig.nearP99)} ms, errors ${r.fig.errors}`);
      }
      if (!b) continue;
      // The source took no writes since the first cutover; vacuum what the previous round left.
      await src.sql('VACUUM ANALYZE pgbench_accounts', 'bench');
      for (const delay of Number.isNaN(pause) ? [0] : [Math.max(0, Math.round(pause)), 0]) {
        console.log(`  PgBouncer: PAUSE, sleep ${delay} ms, RESUME at ${(s.seconds * s.at).toFixed(0)} s`);
        const f = await pgbouncerRun(b.port, delay, round, s, script, ep);
        figs.push(f);
        console.log(`  → switch ${f1(f.switchMs)} ms, pause max ${f1(f.pauseMax)} ms, ±1 s p99 ${f1(f.nearP99)} ms, errors ${f.errors}`);
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
