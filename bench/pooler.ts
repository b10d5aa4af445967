/**
 * Pooler benchmark: pgbench against PostgreSQL directly, through PgBouncer (transaction mode)
 * and through pgshift (transaction mode, same pool size), all on this machine, in one run.
 * Prints TPS, average latency, the pooler's CPU use and the ratios pgshift/PgBouncer and
 * pgshift/direct. With --profile, also runs pgshift under `node --cpu-prof` and prints where
 * its CPU time goes.
 *
 *   node dist/bench/pooler.js [--seconds 15] [--quick] [--profile] ...   (--help for all)
 */
import { parseArgs } from 'node:util';
import { cpus, totalmem, loadavg } from 'node:os';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalPostgres, freePort, SUPERUSER, SUPERUSER_PASSWORD } from '../src/cli/local-postgres.js';
import { pgbenchInit, pgbenchRun, WORKLOADS, type Endpoint, type PgbenchResult, type Workload, type RunOptions } from './lib/pgbench.js';
import { startPgBouncer, type PgBouncer } from './lib/pgbouncer.js';
import { startPgshiftChild, startPgshiftInProcess, type PgshiftServer, type PgshiftOptions } from './lib/pgshift-server.js';
import { cpuTimes, type CpuTimes } from './lib/proc-cpu.js';
import { formatTable, formatMarkdown } from './lib/table.js';
import { tempDir } from './lib/children.js';
import { summarize, loadProfile, formatSummary } from './lib/cpuprofile.js';
import { perfAvailable, startPerfRecord, perfSymbols, formatPerf } from './lib/perf-profile.js';
import { intOption } from './lib/options.js';

const HELP = `pooler benchmark: pgbench direct vs PgBouncer vs pgshift

options (environment variable in brackets):
  --seconds N        measured seconds per run            [PGSHIFT_BENCH_SECONDS] default 15
  --warmup N         warm-up seconds before each run     [PGSHIFT_BENCH_WARMUP]  default 3
  --clients N        pgbench -c                          default 16
  --threads N        pgbench -j                          default 2
  --pool-size N      server connections per pooler       default 8
  --scale N          pgbench -i -s                       default 10
  --rounds N         repeat every run N times, report the median TPS    default 1
  --workloads LIST   comma list of ${WORKLOADS.map((w) => w.name).join(', ')}
                     default: all
  --targets LIST     comma list of direct, pgbouncer, pgshift (child process),
                     pgshift-inproc (pgshift inside the benchmark process); default: direct,pgbouncer,pgshift
  --quick            --seconds 5 --warmup 1 --scale 2 (a smoke run; figures are noisy)
  --profile          afterwards, profile pgshift under select-simple and select-prepared with
                     node --cpu-prof and, when available, Linux perf (on-CPU time)
  --profile-only     only the profile step
  --profile-dir DIR  keep the .cpuprofile files there (default: a temp dir, removed)
  --markdown         also print the results as a Markdown table`;

type TargetName = 'direct' | 'pgbouncer' | 'pgshift' | 'pgshift-inproc';
const TARGET_LABEL: Record<TargetName, string> = {
  direct: 'PostgreSQL (direct)',
  pgbouncer: 'PgBouncer',
  pgshift: 'pgshift',
  'pgshift-inproc': 'pgshift (in-process)',
};

interface Measurement {
  target: TargetName;
  workload: Workload;
  runs: PgbenchResult[];
  /** Pooler CPU seconds (user, sys) used per run (NaN for direct). */
  cpu: CpuTimes[];
}

interface Settings extends RunOptions {
  warmup: number;
  poolSize: number;
  scale: number;
  rounds: number;
  workloads: Workload[];
  targets: TargetName[];
  profile: boolean;
  profileOnly: boolean;
  profileDir?: string;
  markdown: boolean;
}

function envNum(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

const positiveInt = (flag: string, v: string | undefined, dflt: number) => intOption(flag, v, dflt, 0);

function parseSettings(argv: string[]): Settings | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      clients: { type: 'string' },
      threads: { type: 'string' },
      'pool-size': { type: 'string' },
      scale: { type: 'string' },
      rounds: { type: 'string' },
      workloads: { type: 'string' },
      targets: { type: 'string' },
      quick: { type: 'boolean' },
      profile: { type: 'boolean' },
      'profile-only': { type: 'boolean' },
      'profile-dir': { type: 'string' },
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
  const workloadNames = values.workloads?.split(',').map((s) => s.trim()) ?? WORKLOADS.map((w) => w.name);
  const workloads = workloadNames.map((n) => {
    const w = WORKLOADS.find((x) => x.name === n);
    if (!w) throw new Error(`--workloads: unknown workload "${n}" (known: ${WORKLOADS.map((x) => x.name).join(', ')})`);
    return w;
  });
  const targets = (values.targets?.split(',').map((s) => s.trim()) ?? ['direct', 'pgbouncer', 'pgshift']).map((t) => {
    if (!(t in TARGET_LABEL)) throw new Error(`--targets: unknown target "${t}" (known: ${Object.keys(TARGET_LABEL).join(', ')})`);
    return t as TargetName;
  });
  const s: Settings = {
    seconds: positiveInt('seconds', values.seconds ?? envNum('PGSHIFT_BENCH_SECONDS'), quick ? 5 : 15),
    warmup: positiveInt('warmup', values.warmup ?? envNum('PGSHIFT_BENCH_WARMUP'), quick ? 1 : 3),
    clients: positiveInt('clients', values.clients, 16),
    threads: positiveInt('threads', values.threads, 2),
    poolSize: positiveInt('pool-size', values['pool-size'], 8),
    scale: positiveInt('scale', values.scale, quick ? 2 : 10),
    rounds: Math.max(1, positiveInt('rounds', values.rounds, 1)),
    workloads,
    targets,
    profile: values.profile === true || values['profile-only'] === true,
    profileOnly: values['profile-only'] === true,
    profileDir: values['profile-dir'],
    markdown: values.markdown === true,
  };
  if (s.seconds < 1) throw new Error('--seconds must be at least 1');
  if (s.clients % s.threads !== 0) throw new Error(`--clients (${s.clients}) must be a multiple of --threads (${s.threads}), as pgbench requires`);
  return s;
}

function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function fmt(n: number, digits = 0): string {
  return Number.isNaN(n) ? 'n/a' : n.toFixed(digits);
}

/** The figures of a measurement: median TPS and latency over rounds, problems noted. */
function figures(m: Measurement): { tps: number; lat: number; cpu: number; userUs: number; sysUs: number; note: string } {
  const failed = m.runs.reduce((a, r) => a + r.failed, 0);
  const aborted = m.runs.find((r) => r.aborted);
  const note = aborted ? `ABORTED: ${aborted.firstError ?? 'see pgbench output'}` : failed ? `${failed} failed transactions` : '';
  // CPU per transaction is the pooler's own cost, whatever share of the machine it managed to get.
  const perTx = (i: number, x: number) => (m.runs[i].transactions > 0 ? (x * 1e6) / m.runs[i].transactions : NaN);
  return {
    tps: aborted ? NaN : median(m.runs.map((r) => r.tps)),
    lat: aborted ? NaN : median(m.runs.map((r) => r.latencyMs)),
    cpu: median(m.cpu.map((c, i) => (c.user + c.sys) / m.runs[i].seconds)),
    userUs: aborted ? NaN : median(m.cpu.map((c, i) => perTx(i, c.user))),
    sysUs: aborted ? NaN : median(m.cpu.map((c, i) => perTx(i, c.sys))),
    note,
  };
}

function machineNote(s: Settings): string {
  const c = cpus();
  return [
    `machine: ${c.length} CPU(s) (${c[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}`,
    `pgbench -c ${s.clients} -j ${s.threads} -T ${s.seconds} (warm-up ${s.warmup} s, ${s.rounds} round(s), median), scale ${s.scale}, pool size ${s.poolSize}, TCP 127.0.0.1 for every target`,
    `caveat: pgbench, PostgreSQL and the pooler share these ${c.length} CPU(s); a pooler's CPU use is taken from PostgreSQL and pgbench,`,
    '        so the figures compare poolers on this box, not their throughput on dedicated hardware.',
    `load average now: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (anything else running on the machine skews the figures)`,
  ].join('\n');
}

async function vacuum(pg: LocalPostgres): Promise<void> {
  // TPC-B appends to pgbench_history and bloats the other tables; each run starts from the same state.
  // Separate statements: VACUUM cannot run inside the implicit transaction of a multi-statement query.
  await pg.sql('TRUNCATE pgbench_history', 'bench');
  await pg.sql('VACUUM ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts', 'bench');
}

async function measure(pg: LocalPostgres, ep: Endpoint, pid: number | undefined, w: Workload, s: Settings, label: string): Promise<{ result: PgbenchResult; cpu: CpuTimes }> {
  if (w.name.startsWith('tpcb')) await vacuum(pg);
  if (s.warmup > 0) await pgbenchRun(ep, w, { ...s, seconds: s.warmup });
  const cpu0 = cpuTimes(pid);
  const result = await pgbenchRun(ep, w, s);
  const cpu1 = cpuTimes(pid);
  const cpu = { user: cpu1.user - cpu0.user, sys: cpu1.sys - cpu0.sys };
  const share = (cpu.user + cpu.sys) / result.seconds;
  const problem = result.aborted ? `  ABORTED: ${result.firstError}` : result.failed ? `  ${result.failed} failed` : '';
  console.log(`  ${label.padEnd(22)} ${w.name.padEnd(16)} ${fmt(result.tps).padStart(8)} tps  ${fmt(result.latencyMs, 3).padStart(7)} ms${Number.isNaN(share) ? '' : `  pooler CPU ${(share * 100).toFixed(0)}%`}${problem}`);
  return { result, cpu };
}

function report(ms: Measurement[], s: Settings): void {
  const head = ['target', 'workload', 'TPS', 'avg latency ms', 'pooler CPU %', 'user µs/tx', 'sys µs/tx', 'note'];
  const rows: string[][] = [];
  for (const w of s.workloads) {
    for (const t of s.targets) {
      const m = ms.find((x) => x.target === t && x.workload === w);
      if (!m) continue;
      const f = figures(m);
      const pooler = t !== 'direct';
      rows.push([TARGET_LABEL[t], w.name, fmt(f.tps), fmt(f.lat, 3), pooler ? fmt(f.cpu * 100) : '', pooler ? fmt(f.userUs, 1) : '', pooler ? fmt(f.sysUs, 1) : '', f.note]);
    }
  }
  const ratioHead = ['workload', 'pgshift TPS', 'PgBouncer TPS', 'direct TPS', 'pgshift/PgBouncer', 'pgshift/direct', 'PgBouncer/direct'];
  const ratioRows: string[][] = [];
  const shift = s.targets.includes('pgshift') ? 'pgshift' : s.targets.includes('pgshift-inproc') ? 'pgshift-inproc' : null;
  for (const w of s.workloads) {
    const get = (t: TargetName) => {
      const m = ms.find((x) => x.target === t && x.workload === w);
      return m ? figures(m).tps : NaN;
    };
    const p = shift ? get(shift) : NaN;
    const b = get('pgbouncer');
    const d = get('direct');
    const ratio = (x: number, y: number) => (Number.isNaN(x) || Number.isNaN(y) ? 'n/a' : (x / y).toFixed(2));
    ratioRows.push([w.name, fmt(p), fmt(b), fmt(d), ratio(p, b), ratio(p, d), ratio(b, d)]);
  }
  console.log(`\nResults\n\n${formatTable(head, rows)}\n\nRatios (TPS${shift === 'pgshift-inproc' ? ', pgshift in-process' : ''})\n\n${formatTable(ratioHead, ratioRows)}\n`);
  console.log(machineNote(s));
  console.log('pooler CPU: user + system time of the pooler process over the run (100% = one core); µs/tx = CPU time per pgbench transaction.');
  if (ms.some((m) => m.target === 'pgbouncer' && m.workload.name === 'select-prepared' && figures(m).note.startsWith('ABORTED'))) {
    console.log('note: PgBouncer before 1.21 cannot keep protocol-level prepared statements in transaction mode (pgbench -M prepared aborts).');
  }
  if (s.markdown) console.log(`\n${formatMarkdown(head, rows)}\n\n${formatMarkdown(ratioHead, ratioRows)}\n`);
}

async function profilePgshift(pg: LocalPostgres, base: PgshiftOptions, ep: Endpoint, s: Settings): Promise<void> {
  const dir = s.profileDir ?? tempDir('pgshift-bench-cpuprof-');
  const workloads = WORKLOADS.filter((w) => w.name === 'select-simple' || w.name === 'select-prepared');
  const usePerf = perfAvailable();
  for (const w of workloads) {
    const wdir = join(dir, w.name);
    let server = await startPgshiftChild({ ...base, listenPort: await freePort() }, ['--cpu-prof', '--cpu-prof-dir', wdir]);
    try {
      console.log(`\n--- profile of pgshift under ${w.name}: node --cpu-prof (JS-thread wall time; slows pgshift down) ---`);
      await measure(pg, { ...ep, port: server.port }, server.pid, w, s, 'pgshift --cpu-prof');
    } finally {
      await server.stop();
    }
    const files = readdirSync(wdir).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) console.log(`  no .cpuprofile written in ${wdir} (did pgshift exit cleanly?)`);
    else {
      const file = join(wdir, files[0]);
      console.log(`profile: ${s.profileDir ? file : '(temp file, use --profile-dir to keep it)'}\n`);
      console.log(formatSummary(summarize(loadProfile(file)), 25));
    }
    if (!usePerf) continue;
    server = await startPgshiftChild({ ...base, listenPort: await freePort() }, ['--perf-basic-prof-only-functions']);
    try {
      console.log(`\n--- profile of pgshift under ${w.name}: perf record (on-CPU time, kernel included) ---`);
      const wep = { ...ep, port: server.port };
      if (s.warmup > 0) await pgbenchRun(wep, w, { ...s, seconds: s.warmup });
      const file = join(dir, `${w.name}.perf.data`);
      const rec = startPerfRecord(server.pid!, file);
      const run = { ...s, warmup: 0 };
      try {
        await measure(pg, wep, server.pid, w, run, 'pgshift under perf');
      } finally {
        await rec.stop();
      }
      console.log(`perf data: ${s.profileDir ? file : '(temp file, use --profile-dir to keep it)'}\n`);
      console.log(formatPerf(perfSymbols(file), 25));
    } finally {
      await server.stop();
    }
  }
  if (!usePerf) console.log('\n(perf is not available here: only the --cpu-prof view above, which overstates time in socket writes on a busy machine)');
}

export async function main(argv: string[]): Promise<number> {
  const s = parseSettings(argv);
  if (!s) return 0;
  console.log(machineNote(s));
  console.log('\nstarting PostgreSQL ...');
  const pg = await LocalPostgres.start({ settings: { max_connections: 200 } });
  const servers: { stop(): Promise<void> }[] = [];
  try {
    await pg.sql('CREATE DATABASE bench');
    const direct: Endpoint = { host: '127.0.0.1', port: pg.port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'bench' };
    console.log(`pgbench -i -s ${s.scale} ...`);
    await pgbenchInit(direct, s.scale);
    const db = { name: 'bench', host: '127.0.0.1', port: pg.port, dbname: 'bench' };
    // md5 on the client side for both poolers: comparable, and paid once per connection only.
    const shiftOpts: PgshiftOptions = { listenPort: 0, database: db, user: SUPERUSER, password: SUPERUSER_PASSWORD, poolSize: s.poolSize, authType: 'md5' };

    const endpoints = new Map<TargetName, { ep: Endpoint; pid: number | undefined }>();
    if (!s.profileOnly) {
      for (const t of s.targets) {
        if (t === 'direct') endpoints.set(t, { ep: direct, pid: undefined });
        else if (t === 'pgbouncer') {
          const b: PgBouncer = await startPgBouncer({ listenPort: await freePort(), database: db, user: SUPERUSER, password: SUPERUSER_PASSWORD, poolSize: s.poolSize, authType: 'md5' });
          servers.push(b);
          console.log(`${b.version} on port ${b.port}`);
          endpoints.set(t, { ep: { ...direct, port: b.port }, pid: b.pid });
        } else {
          const opts = { ...shiftOpts, listenPort: await freePort() };
          const p: PgshiftServer = t === 'pgshift' ? await startPgshiftChild(opts) : await startPgshiftInProcess(opts);
          servers.push(p);
          console.log(`pgshift (${p.mode}) on port ${p.port}`);
          endpoints.set(t, { ep: { ...direct, port: p.port }, pid: p.pid });
        }
      }
      const ms: Measurement[] = [];
      for (let round = 1; round <= s.rounds; round++) {
        if (s.rounds > 1) console.log(`\nround ${round}/${s.rounds}`);
        else console.log('');
        // Targets alternate within each workload so slow drift (page cache, thermal) hits all alike.
        for (const w of s.workloads) {
          for (const t of s.targets) {
            const { ep, pid } = endpoints.get(t)!;
            const { result, cpu } = await measure(pg, ep, pid, w, s, TARGET_LABEL[t]);
            let m = ms.find((x) => x.target === t && x.workload === w);
            if (!m) ms.push((m = { target: t, workload: w, runs: [], cpu: [] }));
            m.runs.push(result);
            m.cpu.push(cpu);
          }
        }
      }
      report(ms, s);
    }
    if (s.profile) await profilePgshift(pg, shiftOpts, direct, s);
    return 0;
  } finally {
    for (const srv of servers.reverse()) await srv.stop().catch((err) => console.error(`stopping a server failed: ${(err as Error).message}`));
    await pg.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
