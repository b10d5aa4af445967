/**
 * Routing benchmark (issue 3): point queries by primary key through pgshift against a 2-shard
 * cluster, compared with pgshift passing the same queries through to one unsharded database and
 * with PostgreSQL directly, in one run.
 *
 * One PostgreSQL server holds three databases: `plain` (every row) and `shard0`/`shard1`. The
 * table `kv (id bigint PRIMARY KEY, v int, s text)` gets --rows rows: directly in `plain`, and
 * through pgshift's sharded COPY (each row routed by the hash of id) in the shards. pgshift runs
 * inside this process (so its parse-cache counters can be read) with two logical databases:
 * `plain` (one shard: pass-through, no parsing) and `sharded` (2 shards, `[[sharded_tables]]`
 * kv on id). pgbench runs a custom script, `\set id random(1, rows)` + `SELECT v, s FROM kv
 * WHERE id = :id`, with the simple protocol (every text differs: the parse cache misses), the
 * extended protocol and prepared statements (one text `... = $1`: the cache hits).
 *
 *   node dist/bench/router.js [--rows 100000] [--seconds 10] [--clients 16] [--markdown]
 */
import { parseArgs } from 'node:util';
import { cpus, totalmem, loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { LocalPostgres, SUPERUSER, SUPERUSER_PASSWORD } from '../src/cli/local-postgres.js';
import { parseConfig } from '../src/config/index.js';
import { ProxyServer } from '../src/proxy.js';
import { silentLogger } from '../src/observe/log.js';
import { pgbenchRun, type Endpoint, type PgbenchResult, type Workload } from './lib/pgbench.js';
import { cpuTimes } from './lib/proc-cpu.js';
import { formatTable, formatMarkdown } from './lib/table.js';
import { tempDir } from './lib/children.js';
import { fmtNum, ratio } from './lib/shell.js';
import { intOption } from './lib/options.js';
import { median } from './lib/switch-latency.js';

const HELP = `routing benchmark: pgbench point queries through pgshift (2 shards) vs pass-through vs direct

options:
  --rows N          rows in kv                                  default 100000
  --seconds N       measured seconds per run                    default 10
  --warmup N        warm-up seconds before each run             default 2
  --clients N       pgbench -c                                  default 16
  --threads N       pgbench -j                                  default 2
  --pool-size N     pgshift server connections per shard        default 8
  --rounds N        repeat every run, report the median TPS     default 1
  --modes LIST      comma list of select-simple, select-extended, select-prepared, update-extended
                    default: the three select modes
  --markdown        also print the results as Markdown tables`;

type TargetName = 'direct' | 'passthrough' | 'sharded';
const TARGETS: TargetName[] = ['direct', 'passthrough', 'sharded'];
const TARGET_LABEL: Record<TargetName, string> = {
  direct: 'PostgreSQL (direct, unsharded)',
  passthrough: 'pgshift pass-through (1 database)',
  sharded: 'pgshift routed (2 shards)',
};

interface Mode {
  name: string;
  script: 'select' | 'update';
  protocol: 'simple' | 'extended' | 'prepared';
}
const MODES: Mode[] = [
  { name: 'select-simple', script: 'select', protocol: 'simple' },
  { name: 'select-extended', script: 'select', protocol: 'extended' },
  { name: 'select-prepared', script: 'select', protocol: 'prepared' },
  { name: 'update-extended', script: 'update', protocol: 'extended' },
];

interface Settings {
  rows: number;
  seconds: number;
  warmup: number;
  clients: number;
  threads: number;
  poolSize: number;
  rounds: number;
  modes: Mode[];
  markdown: boolean;
}

function parseSettings(argv: string[]): Settings | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      clients: { type: 'string' },
      threads: { type: 'string' },
      'pool-size': { type: 'string' },
      rounds: { type: 'string' },
      modes: { type: 'string' },
      markdown: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const int = intOption;
  const modes = (values.modes?.split(',').map((x) => x.trim()) ?? ['select-simple', 'select-extended', 'select-prepared']).map((n) => {
    const m = MODES.find((x) => x.name === n);
    if (!m) throw new Error(`--modes: unknown mode "${n}" (known: ${MODES.map((x) => x.name).join(', ')})`);
    return m;
  });
  const s: Settings = {
    rows: int('rows', values.rows, 100_000),
    seconds: int('seconds', values.seconds, 10),
    warmup: int('warmup', values.warmup, 2, 0),
    clients: int('clients', values.clients, 16),
    threads: int('threads', values.threads, 2),
    poolSize: int('pool-size', values['pool-size'], 8),
    rounds: int('rounds', values.rounds, 1),
    modes,
    markdown: values.markdown === true,
  };
  if (s.clients % s.threads !== 0) throw new Error(`--clients (${s.clients}) must be a multiple of --threads (${s.threads}), as pgbench requires`);
  return s;
}

function proxyToml(pgPort: number, poolSize: number): { config: string; users: string } {
  const db = (name: string, dbname: string, shard: number) =>
    `[[databases]]\nname = "${name}"\nhost = "127.0.0.1"\nport = ${pgPort}\ndatabase_name = "${dbname}"\nshard = ${shard}\n`;
  const config = [
    '[general]',
    'host = "127.0.0.1"',
    'port = 6432',
    `default_pool_size = ${poolSize}`,
    'min_pool_size = 1',
    'pooler_mode = "transaction"',
    'auth_type = "md5"',
    'shutdown_timeout = 2000',
    '',
    db('plain', 'plain', 0),
    db('sharded', 'shard0', 0),
    db('sharded', 'shard1', 1),
    '[[sharded_tables]]\ndatabase = "sharded"\nname = "kv"\ncolumn = "id"\ndata_type = "bigint"\n',
    '[admin]\npassword = "bench-admin"\n',
  ].join('\n');
  const user = (db: string) => `[[users]]\nname = "${SUPERUSER}"\ndatabase = "${db}"\npassword = "${SUPERUSER_PASSWORD}"\n`;
  return { config, users: `${user('plain')}\n${user('sharded')}` };
}

const KV_DDL = 'CREATE TABLE kv (id bigint PRIMARY KEY, v int NOT NULL, s text NOT NULL)';

interface Measurement {
  target: TargetName;
  mode: Mode;
  runs: PgbenchResult[];
  /** pgshift CPU seconds per transaction (this process), µs. */
  cpuUs: number[];
  hits: number;
  misses: number;
}

export async function main(argv: string[]): Promise<number> {
  const s = parseSettings(argv);
  if (!s) return 0;
  const note = () =>
    [
      `machine: ${cpus().length} CPU(s) (${cpus()[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      `kv: ${fmtNum(s.rows)} rows; pgbench -c ${s.clients} -j ${s.threads} -T ${s.seconds} (warm-up ${s.warmup} s, ${s.rounds} round(s), median); pgshift in this process, pool ${s.poolSize} per shard, md5;`,
      `PostgreSQL (all three databases on one server), pgbench and pgshift share the ${cpus().length} CPU(s).`,
    ].join('\n');
  console.log(note());
  const pgs = await LocalPostgres.start({ settings: { max_connections: 200, shared_buffers: "'256MB'" } });
  let proxy: ProxyServer | null = null;
  try {
    for (const d of ['plain', 'shard0', 'shard1']) {
      await pgs.sql(`CREATE DATABASE ${d}`);
      await pgs.sql(KV_DDL, d);
    }
    await pgs.sql(`INSERT INTO kv SELECT g, g % 1000, md5(g::text) FROM generate_series(1, ${s.rows}) g`, 'plain');
    const { config, users } = proxyToml(pgs.port, s.poolSize);
    proxy = new ProxyServer(parseConfig(config, users), { log: silentLogger() });
    const port = await proxy.start();

    // The shards are filled through pgshift itself: COPY FROM STDIN routed row by row.
    const c = new pg.Client({ host: '127.0.0.1', port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'sharded' });
    await c.connect();
    try {
      const rows = s.rows;
      async function* lines() {
        const batch = 10_000;
        for (let from = 1; from <= rows; from += batch) {
          let chunk = '';
          for (let i = from; i < Math.min(rows + 1, from + batch); i++) chunk += `${i}\t${i % 1000}\tx${i}\n`;
          yield chunk;
        }
      }
      await pipeline(Readable.from(lines()), c.query(copyFrom('COPY kv (id, v, s) FROM STDIN')));
    } finally {
      await c.end();
    }
    // The text column differs from `plain` (md5 there); both return one ~33-byte value per row.
    const n0 = Number((await pgs.sql('SELECT count(*) FROM kv', 'shard0'))[0][0]);
    const n1 = Number((await pgs.sql('SELECT count(*) FROM kv', 'shard1'))[0][0]);
    if (n0 + n1 !== s.rows) throw new Error(`sharded COPY through pgshift stored ${n0 + n1} rows, expected ${s.rows}`);
    await pgs.sql(`UPDATE kv SET s = md5(id::text)`, 'shard0');
    await pgs.sql(`UPDATE kv SET s = md5(id::text)`, 'shard1');
    for (const d of ['plain', 'shard0', 'shard1']) await pgs.sql('VACUUM ANALYZE kv', d);
    console.log(`\nkv loaded: plain ${fmtNum(s.rows)} rows; through pgshift's sharded COPY: shard0 ${fmtNum(n0)}, shard1 ${fmtNum(n1)}\n`);

    const dir = tempDir('pgshift-bench-router-');
    const scripts = {
      select: join(dir, 'select.sql'),
      update: join(dir, 'update.sql'),
    };
    writeFileSync(scripts.select, `\\set id random(1, ${s.rows})\nSELECT v, s FROM kv WHERE id = :id;\n`);
    writeFileSync(scripts.update, `\\set id random(1, ${s.rows})\nUPDATE kv SET v = v + 1 WHERE id = :id;\n`);

    const ep = (t: TargetName): Endpoint =>
      t === 'direct'
        ? { host: '127.0.0.1', port: pgs.port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'plain' }
        : { host: '127.0.0.1', port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: t === 'passthrough' ? 'plain' : 'sharded' };
    const ms: Measurement[] = [];
    for (let round = 1; round <= s.rounds; round++) {
      if (s.rounds > 1) console.log(`round ${round}/${s.rounds}`);
      for (const mode of s.modes) {
        const w: Workload = { name: mode.name, args: ['-f', scripts[mode.script], '-M', mode.protocol] };
        for (const t of TARGETS) {
          if (s.warmup > 0) await pgbenchRun(ep(t), w, { ...s, seconds: s.warmup });
          const pc0 = proxy.parseCache.stats();
          const cpu0 = cpuTimes(process.pid);
          const r = await pgbenchRun(ep(t), w, s);
          const cpu1 = cpuTimes(process.pid);
          const pc1 = proxy.parseCache.stats();
          let m = ms.find((x) => x.target === t && x.mode === mode);
          if (!m) ms.push((m = { target: t, mode, runs: [], cpuUs: [], hits: 0, misses: 0 }));
          m.runs.push(r);
          const cpu = cpu1.user + cpu1.sys - cpu0.user - cpu0.sys;
          m.cpuUs.push(t === 'direct' || !r.transactions ? NaN : (cpu * 1e6) / r.transactions);
          m.hits += pc1.hits - pc0.hits;
          m.misses += pc1.misses - pc0.misses;
          const problem = r.aborted ? `  ABORTED: ${r.firstError}` : r.failed ? `  ${r.failed} failed` : '';
          console.log(`  ${TARGET_LABEL[t].padEnd(34)} ${mode.name.padEnd(16)} ${fmtNum(r.tps).padStart(7)} tps  ${r.latencyMs.toFixed(3)} ms${problem}`);
        }
      }
    }

    const tps = (m: Measurement | undefined) => (!m || m.runs.some((r) => r.aborted) ? NaN : median(m.runs.map((r) => r.tps)));
    const head = ['target', 'mode', 'TPS', 'avg latency ms', 'pgshift CPU µs/tx', 'parse cache hits', 'misses', 'note'];
    const rows: string[][] = [];
    const ratioHead = ['mode', 'routed 2 shards', 'pass-through', 'direct', 'routed/pass-through', 'routed/direct', 'pass-through/direct'];
    const ratioRows: string[][] = [];
    for (const mode of s.modes) {
      for (const t of TARGETS) {
        const m = ms.find((x) => x.target === t && x.mode === mode)!;
        const bad = m.runs.find((r) => r.aborted || r.failed);
        rows.push([
          TARGET_LABEL[t],
          mode.name,
          fmtNum(tps(m)),
          median(m.runs.map((r) => r.latencyMs)).toFixed(3),
          t === 'direct' ? '' : fmtNum(median(m.cpuUs), 1),
          t === 'direct' ? '' : String(m.hits),
          t === 'direct' ? '' : String(m.misses),
          bad ? (bad.aborted ? `ABORTED: ${bad.firstError}` : `${bad.failed} failed`) : '',
        ]);
      }
      const get = (t: TargetName) => tps(ms.find((x) => x.target === t && x.mode === mode));
      const [sh, pt, d] = [get('sharded'), get('passthrough'), get('direct')];
      ratioRows.push([mode.name, fmtNum(sh), fmtNum(pt), fmtNum(d), ratio(sh, pt), ratio(sh, d), ratio(pt, d)]);
    }
    console.log(`\nResults\n\n${formatTable(head, rows)}\n\nRatios (TPS)\n\n${formatTable(ratioHead, ratioRows)}\n`);
    console.log('pgshift CPU µs/tx: user + system CPU of this process (pgshift; pgbench and PostgreSQL are other processes) per transaction.');
    console.log('parse cache: libpg-query parses during the measured runs; simple-protocol texts carry the literal id, so each one is new.');
    console.log(note());
    if (s.markdown) console.log(`\n${formatMarkdown(head, rows)}\n\n${formatMarkdown(ratioHead, ratioRows)}\n`);
    return 0;
  } finally {
    await proxy?.shutdown().catch((err) => console.error(`stopping pgshift failed: ${(err as Error).message}`));
    await pgs.stop();
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
