/**
 * Replication apply benchmark (issue 4): how fast pgshift's ReplicationStream applies a pgbench
 * (TPC-B) write load to 1 and to 2 destination shards, compared with PostgreSQL's own logical
 * replication (`CREATE SUBSCRIPTION`), in one invocation.
 *
 * Setup: a source with `pgbench -i -s <scale>` and a publication on the four pgbench tables
 * (pgbench_history has no primary key: REPLICA IDENTITY FULL, though TPC-B only inserts into it)
 * plus a one-column marker table. One slot per consumer is created with an exported snapshot and
 * each destination is filled by pgshift's copyData under it, so every consumer starts from a
 * destination equal to the source at its slot's consistent point. The destination server holds
 * one database per consumer: `native`, `shift1`, `shift2_0` + `shift2_1`.
 *
 * Phase 1, backlog (the apply rate proper): pgbench runs with every consumer stopped, then a
 * marker row is inserted; each consumer in turn is started and timed until the marker is visible
 * on the destination (on every shard). Same WAL for all; nothing else competes for the CPUs.
 *
 * Phase 2, live: for each consumer in turn (its slot first advanced to the current WAL position,
 * skipping the other consumers' load), pgbench runs while the consumer applies. Reported: source
 * TPS, apply lag sampled every second and at the end, and the time to catch up after pgbench
 * stops (marker visible).
 *
 *   node dist/bench/replication.js [--scale 10] [--seconds 20] [--clients 8] [--markdown]
 */
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { LocalPostgres, SUPERUSER, SUPERUSER_PASSWORD } from '../src/cli/local-postgres.js';
import { connect, type Endpoint } from '../src/migrate/endpoints.js';
import { createSlotWithSnapshot } from '../src/migrate/snapshot.js';
import { copyData } from '../src/migrate/copy/copy-data.js';
import { publishedTables, serverVersionNum } from '../src/migrate/catalog.js';
import { ReplicationStream } from '../src/migrate/replicate/stream.js';
import { parseLsn } from '../src/wire/lsn.js';
import { ShardingSchema } from '../src/sharding/index.js';
import { parseConfig } from '../src/config/index.js';
import type { Config } from '../src/config/types.js';
import { silentLogger } from '../src/observe/log.js';
import { pgbenchInit, pgbenchRun, type Endpoint as BenchEndpoint, type PgbenchResult } from './lib/pgbench.js';
import { formatTable, formatMarkdown } from './lib/table.js';
import { fmtNum, ratio, sleep, timed } from './lib/shell.js';
import { intOption, machineLine } from './lib/options.js';

const HELP = `replication apply benchmark: pgshift ReplicationStream (1 and 2 shards) vs CREATE SUBSCRIPTION

options:
  --scale N        pgbench -i -s on the source                    default 10
  --seconds N      pgbench -T for each load run                   default 20
  --clients N      pgbench -c (TPC-B, -M simple)                  default 8
  --threads N      pgbench -j                                     default 2
  --consumers LIST comma list of native, pgshift-1, pgshift-2     default: all
  --phases LIST    comma list of backlog, live                    default: both
  --markdown       also print the results as Markdown tables`;

type ConsumerName = 'native' | 'pgshift-1' | 'pgshift-2';
const CONSUMERS: ConsumerName[] = ['native', 'pgshift-1', 'pgshift-2'];
const LABEL: Record<ConsumerName, string> = {
  native: 'native logical replication (CREATE SUBSCRIPTION)',
  'pgshift-1': 'pgshift ReplicationStream → 1 shard',
  'pgshift-2': 'pgshift ReplicationStream → 2 shards',
};

interface Settings {
  scale: number;
  seconds: number;
  clients: number;
  threads: number;
  consumers: ConsumerName[];
  backlog: boolean;
  live: boolean;
  markdown: boolean;
}

function parseSettings(argv: string[]): Settings | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      scale: { type: 'string' },
      seconds: { type: 'string' },
      clients: { type: 'string' },
      threads: { type: 'string' },
      consumers: { type: 'string' },
      phases: { type: 'string' },
      markdown: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const int = intOption;
  const consumers = (values.consumers?.split(',').map((x) => x.trim()) ?? CONSUMERS).map((c) => {
    if (!CONSUMERS.includes(c as ConsumerName)) throw new Error(`--consumers: unknown consumer "${c}" (known: ${CONSUMERS.join(', ')})`);
    return c as ConsumerName;
  });
  const phases = values.phases?.split(',').map((x) => x.trim()) ?? ['backlog', 'live'];
  for (const p of phases) if (p !== 'backlog' && p !== 'live') throw new Error(`--phases: unknown phase "${p}" (known: backlog, live)`);
  const s: Settings = {
    scale: int('scale', values.scale, 10),
    seconds: int('seconds', values.seconds, 20),
    clients: int('clients', values.clients, 8),
    threads: int('threads', values.threads, 2),
    consumers,
    backlog: phases.includes('backlog'),
    live: phases.includes('live'),
    markdown: values.markdown === true,
  };
  if (s.clients % s.threads !== 0) throw new Error(`--clients (${s.clients}) must be a multiple of --threads (${s.threads}), as pgbench requires`);
  return s;
}

const TABLES_DDL = [
  'CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84))',
  'CREATE TABLE pgbench_branches (bid int PRIMARY KEY, bbalance int, filler char(88))',
  'CREATE TABLE pgbench_tellers (tid int PRIMARY KEY, bid int, tbalance int, filler char(84))',
  'CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22))',
  'CREATE TABLE bench_marker (id int PRIMARY KEY)',
];

function shardingToml(): string {
  return [
    ['pgbench_accounts', 'aid'],
    ['pgbench_history', 'aid'],
    ['pgbench_tellers', 'tid'],
    ['pgbench_branches', 'bid'],
  ]
    .map(([t, c]) => `[[sharded_tables]]\ndatabase = "dst"\nname = "${t}"\ncolumn = "${c}"\ndata_type = "integer"\n`)
    .join('\n');
}

function destConfig(dstPort: number, dbs: string[]): Config {
  const toml = [
    '[general]',
    'port = 6432',
    ...dbs.map((d, i) => `[[databases]]\nname = "dst"\nhost = "127.0.0.1"\nport = ${dstPort}\ndatabase_name = "${d}"\nshard = ${i}\n`),
    shardingToml(),
  ].join('\n');
  const users = `[[users]]\nname = "${SUPERUSER}"\ndatabase = "dst"\npassword = "${SUPERUSER_PASSWORD}"\n`;
  return parseConfig(toml, users);
}

/** One way of applying the source's changes to a destination. */
interface Consumer {
  name: ConsumerName;
  slot: string;
  dbs: string[];
  /** Starts consuming; resolves once the walsender is streaming. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Source commit LSN applied on the destination (every shard), or null when unknown. */
  applied(): Promise<bigint | null>;
}

interface BacklogResult {
  seconds: number;
  note: string;
}

interface LiveResult {
  bench: PgbenchResult;
  maxLagBytes: number;
  endLagBytes: number;
  catchUpSeconds: number;
}

function machineNote(s: Settings): string {
  const c = cpus();
  return [
    machineLine(),
    `pgbench TPC-B -M simple -c ${s.clients} -j ${s.threads} -T ${s.seconds}, scale ${s.scale}; source and destination servers (fsync=off, synchronous_commit=off) on this machine;`,
    `pgbench, both servers, their walsenders/apply workers and pgshift (inside this process) share the ${c.length} CPU(s).`,
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const s = parseSettings(argv);
  if (!s) return 0;
  console.log(machineNote(s));
  const settings = { max_wal_size: "'8GB'", checkpoint_timeout: "'30min'", shared_buffers: "'256MB'", max_logical_replication_workers: 8, wal_receiver_status_interval: "'1s'" };
  const src = await LocalPostgres.start({ settings });
  const dst = await LocalPostgres.start({ settings });
  const pools: pg.Client[] = [];
  const consumers: Consumer[] = [];
  try {
    await src.sql('CREATE DATABASE bench');
    const benchEp: BenchEndpoint = { host: '127.0.0.1', port: src.port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'bench' };
    console.log(`\npgbench -i -s ${s.scale} on the source ...`);
    await pgbenchInit(benchEp, s.scale);
    await src.sql('ALTER TABLE pgbench_history REPLICA IDENTITY FULL', 'bench');
    await src.sql('CREATE TABLE bench_marker (id int PRIMARY KEY)', 'bench');
    await src.sql('CREATE PUBLICATION bench_pub FOR TABLE pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history, bench_marker', 'bench');
    const source: Endpoint = { shard: 0, host: '127.0.0.1', port: src.port, database: 'bench', user: SUPERUSER, password: SUPERUSER_PASSWORD };
    const meta = await connect(source);
    const tables = await publishedTables(meta, 'bench_pub');
    const version = await serverVersionNum(meta);
    meta.destroy();

    const client = async (port: number, database: string) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database });
      await c.connect();
      pools.push(c);
      return c;
    };
    const srcSql = await client(src.port, 'bench');

    // Destinations: schema, then the data as of each consumer's slot (copied by pgshift).
    for (const name of s.consumers) {
      const dbs = name === 'native' ? ['native'] : name === 'pgshift-1' ? ['shift1'] : ['shift2_0', 'shift2_1'];
      for (const d of dbs) {
        await dst.sql(`CREATE DATABASE ${d}`);
        for (const ddl of TABLES_DDL) await dst.sql(ddl, d);
      }
      const slot = `bench_${name.replace('-', '_')}`;
      const destination: Endpoint[] = dbs.map((d, i) => ({ shard: i, host: '127.0.0.1', port: dst.port, database: d, user: SUPERUSER, password: SUPERUSER_PASSWORD }));
      const snap = await createSlotWithSnapshot(source, slot, version);
      const copy = await timed(() =>
        copyData({
          source: [source],
          destination,
          snapshots: [snap.snapshotName],
          tables,
          sharding: new ShardingSchema('dst', destConfig(dst.port, dbs).sharded_tables, [], [], dbs.length),
          parallel: 1,
          progress: new Map(),
          signal: new AbortController().signal,
          log: silentLogger(),
        }),
      );
      snap.close();
      console.log(`${name}: slot ${slot} created, destination ${dbs.join(' + ')} filled by pgshift copyData in ${copy.seconds.toFixed(1)} s`);
      const dstSql = await Promise.all(dbs.map((d) => client(dst.port, d)));
      consumers.push(name === 'native' ? await nativeConsumer(src, dstSql[0], slot) : pgshiftConsumer(name, source, destination, dst.port, dbs, slot));
    }

    let markerId = 0;
    /** Inserts a marker row on the source; resolves with its id. */
    const mark = async () => {
      markerId++;
      await srcSql.query(`INSERT INTO bench_marker VALUES (${markerId})`);
      return markerId;
    };
    const dstClients = new Map<Consumer, pg.Client[]>();
    for (const c of consumers) dstClients.set(c, pools.filter((p) => c.dbs.includes(p.database!)));
    /** Polls every shard of `c` every 5 ms until marker `id` is there; seconds waited. */
    const waitMarker = async (c: Consumer, id: number, timeoutMs = 900_000): Promise<number> => {
      const t0 = performance.now();
      for (const db of dstClients.get(c)!) {
        for (;;) {
          const r = await db.query(`SELECT 1 FROM bench_marker WHERE id = ${id}`);
          if (r.rowCount) break;
          if (performance.now() - t0 > timeoutMs) throw new Error(`${c.name}: marker ${id} did not arrive on ${db.database} within ${timeoutMs / 1000} s`);
          await sleep(5);
        }
      }
      return (performance.now() - t0) / 1000;
    };
    const currentLsn = async () => parseLsn((await srcSql.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string);

    const backlog = new Map<ConsumerName, BacklogResult>();
    let backlogBench: PgbenchResult | null = null;
    if (s.backlog) {
      console.log(`\nphase 1 (backlog): pgbench -c ${s.clients} -T ${s.seconds} with every consumer stopped ...`);
      await src.sql('VACUUM ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts', 'bench');
      const walBefore = await currentLsn();
      backlogBench = await pgbenchRun(benchEp, { name: 'tpcb', args: ['-M', 'simple'] }, s);
      if (backlogBench.aborted) throw new Error(`pgbench aborted: ${backlogBench.firstError}`);
      const id = await mark();
      const walBytes = Number((await currentLsn()) - walBefore);
      console.log(`  ${fmtNum(backlogBench.transactions)} transactions (${fmtNum(backlogBench.tps)} tps), ${fmtNum(walBytes / 2 ** 20, 0)} MiB of WAL; now each consumer catches up alone:`);
      for (const c of consumers) {
        const t0 = performance.now();
        await c.start();
        await waitMarker(c, id);
        const seconds = (performance.now() - t0) / 1000;
        await c.stop();
        backlog.set(c.name, { seconds, note: '' });
        console.log(`  ${LABEL[c.name].padEnd(52)} ${seconds.toFixed(1).padStart(6)} s  ${fmtNum(backlogBench.transactions / seconds).padStart(7)} tx/s`);
      }
    }

    const live = new Map<ConsumerName, LiveResult>();
    if (s.live) {
      console.log(`\nphase 2 (live): pgbench -c ${s.clients} -T ${s.seconds} while one consumer applies`);
      for (const c of consumers) {
        // Skip what the other consumers' runs wrote: this run starts with no backlog.
        await srcSql.query(`SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())`, [c.slot]);
        await src.sql('TRUNCATE pgbench_history', 'bench');
        await src.sql('VACUUM ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts', 'bench');
        await c.start();
        await waitMarker(c, await mark());
        let maxLag = 0;
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            await sleep(1000);
            const a = await c.applied();
            if (a !== null) maxLag = Math.max(maxLag, Number((await currentLsn()) - a));
          }
        })();
        const bench = await pgbenchRun(benchEp, { name: 'tpcb', args: ['-M', 'simple'] }, s);
        sampling = false;
        await sampler;
        const a = await c.applied();
        const endLag = a === null ? NaN : Number((await currentLsn()) - a);
        const catchUp = await waitMarker(c, await mark());
        await c.stop();
        live.set(c.name, { bench, maxLagBytes: maxLag, endLagBytes: endLag, catchUpSeconds: catchUp });
        console.log(`  ${LABEL[c.name].padEnd(52)} source ${fmtNum(bench.tps).padStart(5)} tps, lag at end ${fmtNum(endLag / 2 ** 20, 1)} MiB, caught up ${catchUp.toFixed(2)} s after pgbench`);
      }
    }

    report(s, backlogBench, backlog, live);
    return 0;
  } finally {
    for (const c of consumers) await c.stop().catch(() => undefined);
    for (const p of pools) await p.end().catch(() => undefined);
    await src.stop();
    await dst.stop();
  }
}

function report(s: Settings, backlogBench: PgbenchResult | null, backlog: Map<ConsumerName, BacklogResult>, live: Map<ConsumerName, LiveResult>): void {
  const nativeB = backlog.get('native');
  const out: string[] = [];
  const md: string[] = [];
  if (backlogBench && backlog.size) {
    const tx = backlogBench.transactions;
    const head = ['consumer', 'catch-up s', 'tx/s applied', 'rows/s applied', 'vs native'];
    const rows = [...backlog.entries()].map(([n, r]) => [LABEL[n], r.seconds.toFixed(1), fmtNum(tx / r.seconds), fmtNum((4 * tx) / r.seconds), nativeB ? ratio(nativeB.seconds, r.seconds) : 'n/a']);
    out.push(`Backlog: ${fmtNum(tx)} TPC-B transactions (${fmtNum(4 * tx)} row changes: 3 updates + 1 insert each), applied by each consumer alone\n`, formatTable(head, rows));
    md.push(formatMarkdown(head, rows));
  }
  if (live.size) {
    const nativeL = live.get('native');
    const head = ['consumer', 'source TPS', 'max lag MiB', 'lag at end MiB', 'catch-up s', 'tx/s applied', 'vs native'];
    const rate = (r: LiveResult) => r.bench.transactions / (r.bench.seconds + r.catchUpSeconds);
    const rows = [...live.entries()].map(([n, r]) => [
      LABEL[n],
      fmtNum(r.bench.tps),
      fmtNum(r.maxLagBytes / 2 ** 20, 1),
      fmtNum(r.endLagBytes / 2 ** 20, 1),
      r.catchUpSeconds.toFixed(2),
      fmtNum(rate(r)),
      nativeL ? ratio(rate(r), rate(nativeL)) : 'n/a',
    ]);
    out.push(
      `\nLive: pgbench -T ${s.seconds} on the source while the consumer applies (tx/s applied = transactions / (pgbench time + catch-up time))\n`,
      formatTable(head, rows),
    );
    md.push(formatMarkdown(head, rows));
  }
  console.log(`\nResults\n\n${out.join('\n')}\n`);
  console.log('"vs native" = apply throughput relative to native logical replication (goal for pgshift → 1 shard: ≥ 1.0x).');
  console.log('lag = source pg_current_wal_lsn() minus the applied source commit LSN (pgshift: appliedLsn on every shard; native: its replication origin on the destination).');
  console.log(machineNote(s));
  if (s.markdown) console.log(`\n${md.join('\n\n')}\n`);
}

async function nativeConsumer(src: LocalPostgres, dstSql: pg.Client, slot: string): Promise<Consumer> {
  await dstSql.query(
    `CREATE SUBSCRIPTION bench_sub CONNECTION 'host=127.0.0.1 port=${src.port} user=${SUPERUSER} password=${SUPERUSER_PASSWORD} dbname=bench'
       PUBLICATION bench_pub WITH (copy_data = false, create_slot = false, slot_name = '${slot}', enabled = false)`,
  );
  const srcConn = new pg.Client({ host: '127.0.0.1', port: src.port, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'bench' });
  await srcConn.connect();
  let running = false;
  return {
    name: 'native',
    slot,
    dbs: ['native'],
    async start() {
      await dstSql.query('ALTER SUBSCRIPTION bench_sub ENABLE');
      running = true;
      // The launcher starts the apply worker asynchronously: wait until it holds the slot.
      for (let i = 0; ; i++) {
        const r = await srcConn.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
        if (r.rows[0]?.active) return;
        if (i > 3000) throw new Error('native subscription did not start streaming within 30 s');
        await sleep(10);
      }
    },
    async stop() {
      if (!running) return;
      running = false;
      await dstSql.query('ALTER SUBSCRIPTION bench_sub DISABLE');
      for (let i = 0; i < 3000; i++) {
        const r = await srcConn.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
        if (!r.rows[0]?.active) return;
        await sleep(10);
      }
      throw new Error('native subscription still holds its slot 30 s after DISABLE');
    },
    async applied() {
      const r = await dstSql.query(
        `SELECT remote_lsn::text AS l FROM pg_replication_origin_status o JOIN pg_subscription s ON o.external_id = 'pg_' || s.oid WHERE s.subname = 'bench_sub'`,
      );
      return r.rows[0]?.l ? parseLsn(r.rows[0].l as string) : null;
    },
  };
}

function pgshiftConsumer(name: ConsumerName, source: Endpoint, destination: Endpoint[], dstPort: number, dbs: string[], slot: string): Consumer {
  const config = destConfig(dstPort, dbs);
  let stream: ReplicationStream | null = null;
  return {
    name,
    slot,
    dbs,
    async start() {
      stream = new ReplicationStream({ source, destination, destDatabase: 'dst', config, slot, publication: 'bench_pub', log: silentLogger(), originName: slot });
      stream.onError = (e) => console.error(`${name}: replication stream failed: ${e.message}`);
      await stream.start();
    },
    async stop() {
      const st = stream;
      stream = null;
      await st?.stop();
    },
    async applied() {
      return stream ? stream.appliedLsn : null;
    },
  };
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
