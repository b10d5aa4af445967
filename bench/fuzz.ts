/**
 * Protocol fuzz benchmark: a seeded fuzzer (bench/lib/protocol-fuzzer.ts) sends malformed,
 * truncated, oversized and random messages at every protocol phase to pgshift (a child process,
 * real PostgreSQL behind it) while pgbench runs through the same pgshift. Reports:
 *
 *  - crashes of pgshift (must be 0) and pgbench failed transactions (must be 0);
 *  - pgbench TPS before vs during the fuzzing, as a ratio;
 *  - pgshift's resident memory before, at its peak during, and after the fuzzing;
 *  - leftover clients and server connections once the fuzzer is gone.
 *
 *   node dist/bench/fuzz.js [--seed 1] [--seconds 10] [--messages 1000000] [--concurrency 16] ...
 * Exits 1 when pgshift crashed, a transaction failed or pgshift did not answer afterwards.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { LocalPostgres, freePort, SUPERUSER, SUPERUSER_PASSWORD } from '../src/cli/local-postgres.js';
import { pgbenchInit, pgbenchRun, WORKLOADS, type Endpoint, type PgbenchResult } from './lib/pgbench.js';
import { startPgshiftChild } from './lib/pgshift-server.js';
import { ProtocolFuzzer, type FuzzStats } from './lib/protocol-fuzzer.js';
import { intOption, machineLine } from './lib/options.js';

const HELP = `protocol fuzz benchmark: malformed messages against pgshift while pgbench runs

options:
  --seed N           fuzzer seed (same seed, same bytes)          default 1
  --seconds N        pgbench -T per measured run                  default 10
  --messages N       keep fuzzing (in further pgbench runs) until this many
                     malformed messages were sent                 default 1000000
  --max-rounds N     at most this many fuzzed pgbench runs        default 20
  --concurrency N    fuzz connections open at once                default 16
  --clients N        pgbench -c                                   default 8
  --pool-size N      pgshift server connections                   default 8
  --workload NAME    ${WORKLOADS.map((w) => w.name).join(', ')}   default select-prepared
  --quick            --seconds 3 --messages 50000 (a smoke run)`;

interface Settings {
  seed: number;
  seconds: number;
  messages: number;
  maxRounds: number;
  concurrency: number;
  clients: number;
  poolSize: number;
  workload: (typeof WORKLOADS)[number];
}

function parseSettings(argv: string[]): Settings | null {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      seed: { type: 'string' }, seconds: { type: 'string' }, messages: { type: 'string' }, 'max-rounds': { type: 'string' },
      concurrency: { type: 'string' }, clients: { type: 'string' }, 'pool-size': { type: 'string' }, workload: { type: 'string' },
      quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    console.log(HELP);
    return null;
  }
  const workload = WORKLOADS.find((w) => w.name === (v.workload ?? 'select-prepared'));
  if (!workload) throw new Error(`--workload must be one of ${WORKLOADS.map((w) => w.name).join(', ')}`);
  return {
    seed: intOption('seed', v.seed, 1, 0),
    seconds: intOption('seconds', v.seconds, v.quick ? 3 : 10),
    messages: intOption('messages', v.messages, v.quick ? 50_000 : 1_000_000),
    maxRounds: intOption('max-rounds', v['max-rounds'], 20),
    concurrency: intOption('concurrency', v.concurrency, 16),
    clients: intOption('clients', v.clients, 8),
    poolSize: intOption('pool-size', v['pool-size'], 8),
    workload,
  };
}

/** Resident memory of a process in MiB (Linux /proc), NaN when unavailable. */
function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN; // the process is gone: reported as a crash by alive()
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function adminRows(port: number, sql: string): Promise<Record<string, string>[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'admin', password: 'bench-admin', database: 'admin' });
  await c.connect();
  try {
    return (await c.query(sql)).rows as Record<string, string>[];
  } finally {
    await c.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

export async function main(argv: string[]): Promise<number> {
  const s = parseSettings(argv);
  if (!s) return 0;
  console.log(machineLine());
  console.log(`seed ${s.seed}, ${s.concurrency} fuzz connections, pgbench ${s.workload.name} -c ${s.clients} -T ${s.seconds}, pool ${s.poolSize}, target ${s.messages} messages`);
  const pgc = await LocalPostgres.start({ settings: { max_connections: 100 } });
  let shift: Awaited<ReturnType<typeof startPgshiftChild>> | null = null;
  try {
    await pgc.sql('CREATE DATABASE bench');
    const direct: Endpoint = { host: '127.0.0.1', port: pgc.port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'bench' };
    await pgbenchInit(direct, 1);
    shift = await startPgshiftChild({
      listenPort: await freePort(),
      database: { name: 'bench', host: '127.0.0.1', port: pgc.port, dbname: 'bench' },
      user: SUPERUSER,
      password: SUPERUSER_PASSWORD,
      poolSize: s.poolSize,
      authType: 'md5',
    });
    const pid = shift.pid!;
    const ep: Endpoint = { ...direct, port: shift.port };
    const run = () => pgbenchRun(ep, s.workload, { clients: s.clients, threads: 2, seconds: s.seconds });

    await run(); // warm-up (statement cache, pool)
    const before = await run();
    const rssBefore = rssMiB(pid);
    console.log(`before:  ${fmt(before.tps)} TPS, ${before.failed} failed, pgshift RSS ${fmt(rssBefore)} MiB`);

    const fuzzer = new ProtocolFuzzer({ host: '127.0.0.1', port: shift.port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'bench' }, { seed: s.seed, concurrency: s.concurrency });
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssMiB(pid) || 0)), 250);
    fuzzer.start();
    const during: PgbenchResult[] = [];
    const t0 = Date.now();
    do {
      const r = await run();
      during.push(r);
      console.log(`fuzzed run ${during.length}: ${fmt(r.tps)} TPS, ${r.failed} failed${r.aborted ? ' (pgbench aborted a client)' : ''}; ${fuzzer.stats.messages} messages so far`);
      // Why pgbench gave up, in its own words.
      for (const l of r.raw.split('\n').filter((x) => /aborted|ERROR|FATAL/.test(x)).slice(0, 5)) console.log(`  pgbench: ${l}`);
    } while (fuzzer.stats.messages < s.messages && during.length < s.maxRounds && alive(pid));
    const stats: FuzzStats = await fuzzer.stop();
    const fuzzSeconds = (Date.now() - t0) / 1000;
    clearInterval(sampler);

    await sleep(3000); // let closed connections and their buffers go
    const rssAfter = rssMiB(pid);
    const crashed = !alive(pid);
    let clientsLeft = NaN;
    let serversActive = NaN;
    let answered = false;
    if (!crashed) {
      try {
        clientsLeft = (await adminRows(shift.port, 'SHOW CLIENTS')).length;
        serversActive = (await adminRows(shift.port, 'SHOW POOLS')).reduce((n, p) => n + Number(p.sv_active ?? 0), 0);
        answered = true;
      } catch (err) {
        console.log(`pgshift did not answer after the fuzzing: ${(err as Error).message}`);
      }
    }
    const tx = during.reduce((n, r) => n + r.transactions, 0);
    const secs = during.reduce((n, r) => n + r.seconds, 0);
    const tpsDuring = during.reduce((n, r) => n + r.tps * r.seconds, 0) / secs;
    const failed = during.reduce((n, r) => n + r.failed, before.failed);
    const aborted = during.some((r) => r.aborted);
    console.log('');
    console.log('| measure | value |');
    console.log('|---|---|');
    console.log(`| malformed messages sent | ${stats.messages} (${fmt(stats.bytes / 2 ** 20)} MiB) in ${fmt(fuzzSeconds)} s |`);
    console.log(`| fuzz connections (logged in / closed by pgshift / refused) | ${stats.connections} (${stats.logins} / ${stats.closedByProxy} / ${stats.connectFailures}) |`);
    console.log(`| pgshift crashes | ${crashed ? 1 : 0} |`);
    console.log(`| pgbench transactions during / failed (all runs) | ${tx} / ${failed}${aborted ? ' (a client aborted)' : ''} |`);
    console.log(`| TPS before / during / ratio | ${fmt(before.tps)} / ${fmt(tpsDuring)} / ${fmt(tpsDuring / before.tps, 2)} |`);
    console.log(`| pgshift RSS MiB before / peak during / after | ${fmt(rssBefore)} / ${fmt(rssPeak)} / ${fmt(rssAfter)} |`);
    console.log(`| clients left (admin session included) / server connections still active | ${clientsLeft} / ${serversActive} |`);
    return crashed || failed > 0 || aborted || !answered ? 1 : 0;
  } finally {
    await shift?.stop();
    await pgc.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((c) => process.exit(c), (err) => {
    console.error(err);
    process.exit(1);
  });
}
