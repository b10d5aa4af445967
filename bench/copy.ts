/**
 * Copy benchmark (issue 4): one table of --rows rows (default 10 million: bigint id, int, ~40-byte
 * text, numeric, timestamptz) on a source server, copied into fresh destination databases by
 *
 *   pipe        psql `COPY t TO STDOUT (FORMAT binary)` | psql `COPY t FROM STDIN (FORMAT binary)`
 *               into one database: the limit a copier is measured against;
 *   pgshift     the product path of COPY_DATA (src/migrate/copy/copy-data.ts `copyData`): a slot with an
 *               exported snapshot, binary COPY out, each tuple's key hashed in place, binary COPY
 *               into each destination shard; 1 → 1 and 1 → 2 shards, with 1 worker and with
 *               `resharding_parallel_copies` workers over ctid ranges;
 *   pgcopydb    `pgcopydb clone` (Debian package), whole database, its default jobs.
 *
 * Prints rows/s, MB/s (binary COPY stream bytes) and the ratio to the pipe.
 *
 *   node dist/bench/copy.js [--rows 10000000] [--variants ...] [--markdown]   (--help for all)
 */
import { parseArgs } from 'node:util';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { LocalPostgres, SUPERUSER, SUPERUSER_PASSWORD } from '../src/cli/local-postgres.js';
import { connect, type Endpoint } from '../src/migrate/endpoints.js';
import { createSlotWithSnapshot, dropSlot } from '../src/migrate/snapshot.js';
import { copyData, DEFAULT_CHUNK_BLOCKS } from '../src/migrate/copy/copy-data.js';
import { publishedTables, serverVersionNum, tableKey } from '../src/migrate/catalog.js';
import type { TableCopy } from '../src/migrate/copy/table-progress.js';
import { ShardingSchema } from '../src/sharding/index.js';
import { silentLogger } from '../src/observe/log.js';
import { formatTable, formatMarkdown } from './lib/table.js';
import { tempDir } from './lib/children.js';
import { runShell, libpqEnv, shq, timed, fmtNum, ratio } from './lib/shell.js';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { intOption, machineLine } from './lib/options.js';

const HELP = `copy benchmark: pgshift copy vs a binary COPY pipe vs pgcopydb clone

options:
  --rows N          rows in the source table                       default 10000000
  --variants LIST   comma list of pipe, pipe-node, pgshift-1to1, pgshift-1to2, pgshift-1to2-par, pgcopydb
                    default: all (pgshift-1to2-par uses --parallel workers over ctid ranges)
  --parallel N      workers for pgshift-1to2-par (resharding_parallel_copies)   default 4
  --chunk-blocks N  ctid range size for pgshift-1to2-par, in 8 kB blocks
                    default: table blocks / parallel (the product default is ${DEFAULT_CHUNK_BLOCKS})
  --no-pk           destination tables without a primary key during the copy
                    (default: with one, as schema sync creates it before the copy)
  --markdown        also print the results as a Markdown table`;

type Variant = 'pipe' | 'pipe-node' | 'pgshift-1to1' | 'pgshift-1to2' | 'pgshift-1to2-par' | 'pgcopydb';
const VARIANTS: Variant[] = ['pipe', 'pipe-node', 'pgshift-1to1', 'pgshift-1to2', 'pgshift-1to2-par', 'pgcopydb'];

interface Settings {
  rows: number;
  variants: Variant[];
  parallel: number;
  chunkBlocks: number | null;
  pk: boolean;
  markdown: boolean;
}

interface Result {
  label: string;
  seconds: number;
  rows: number;
  note: string;
}

function parseSettings(argv: string[]): Settings | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string' },
      variants: { type: 'string' },
      parallel: { type: 'string' },
      'chunk-blocks': { type: 'string' },
      'no-pk': { type: 'boolean' },
      markdown: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return null;
  }
  const int = intOption;
  const variants = (values.variants?.split(',').map((s) => s.trim()) ?? VARIANTS).map((v) => {
    if (!VARIANTS.includes(v as Variant)) throw new Error(`--variants: unknown variant "${v}" (known: ${VARIANTS.join(', ')})`);
    return v as Variant;
  });
  return {
    rows: int('rows', values.rows, 10_000_000),
    variants,
    parallel: int('parallel', values.parallel, 4),
    chunkBlocks: values['chunk-blocks'] === undefined ? null : int('chunk-blocks', values['chunk-blocks'], 1),
    pk: values['no-pk'] !== true,
    markdown: values.markdown === true,
  };
}

export function tableDdl(pk: boolean): string {
  return `CREATE TABLE t (id bigint NOT NULL${pk ? ' PRIMARY KEY' : ''}, n int NOT NULL, s text NOT NULL, amount numeric(12,2), ts timestamptz)`;
}

/** Same postgresql.conf for both servers: room for WAL so checkpoints do not dominate. */
export const PG_SETTINGS = { max_wal_size: "'16GB'", checkpoint_timeout: "'30min'", shared_buffers: "'256MB'", maintenance_work_mem: "'256MB'" };

/**
 * The benchmark table's rows 1..rows, inserted in slices so one statement never holds the whole
 * table's WAL in flight; `where` (over g) keeps a subset, e.g. one shard's rows.
 */
export async function fillTable(pg: LocalPostgres, db: string, rows: number, where = 'true'): Promise<void> {
  const slice = 1_000_000;
  for (let from = 1; from <= rows; from += slice) {
    const to = Math.min(rows, from + slice - 1);
    await pg.sql(
      `INSERT INTO t SELECT g, (g * 7919) % 1000003, md5(g::text) || lpad(g::text, 8, '0'),
              ((g * 37) % 10000000) / 100.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1.000001 second'
         FROM generate_series(${from}::bigint, ${to}::bigint) g WHERE ${where}`,
      db,
    );
  }
}

async function countRows(pg: LocalPostgres, db: string): Promise<number> {
  return Number((await pg.sql('SELECT count(*) FROM t', db))[0][0]);
}

async function freshDb(dst: LocalPostgres, name: string, pk: boolean, createTable = true): Promise<void> {
  await dst.sql(`DROP DATABASE IF EXISTS ${name}`);
  await dst.sql(`CREATE DATABASE ${name}`);
  if (createTable) await dst.sql(tableDdl(pk), name);
  await dst.sql('CHECKPOINT');
}

async function pgshiftCopy(src: LocalPostgres, dst: LocalPostgres, shards: number, parallel: number, chunkBlocks: number, pk: boolean): Promise<{ seconds: number; rows: number; bytes: number; perShard: number[] }> {
  const dbs = Array.from({ length: shards }, (_, i) => `pgshift_${shards}_${i}`);
  for (const d of dbs) await freshDb(dst, d, pk);
  const source: Endpoint = { shard: 0, host: '127.0.0.1', port: src.port, database: 'src', user: SUPERUSER, password: SUPERUSER_PASSWORD };
  const destination: Endpoint[] = dbs.map((d, i) => ({ shard: i, host: '127.0.0.1', port: dst.port, database: d, user: SUPERUSER, password: SUPERUSER_PASSWORD }));
  const meta = await connect(source);
  let tables;
  let version;
  try {
    tables = await publishedTables(meta, 'bench_pub');
    version = await serverVersionNum(meta);
  } finally {
    meta.destroy();
  }
  const sharding = new ShardingSchema('dst', [{ database: 'dst', name: 't', column: 'id', data_type: 'bigint' }], [], [], shards);
  const slot = await createSlotWithSnapshot(source, 'bench_copy', version);
  const progress = new Map<string, TableCopy>();
  try {
    const { seconds } = await timed(() =>
      copyData({ source: [source], destination, snapshots: [slot.snapshotName], tables, sharding, parallel, chunkBlocks, progress, signal: new AbortController().signal, log: silentLogger() }),
    );
    const p = progress.get(tableKey(tables[0]))!;
    const perShard: number[] = [];
    for (const d of dbs) perShard.push(await countRows(dst, d));
    for (const d of dbs) await dst.sql(`DROP DATABASE ${d}`);
    return { seconds, rows: p.rows, bytes: p.bytes, perShard };
  } finally {
    slot.close();
    await dropSlot(source, 'bench_copy');
  }
}

/** Two node-postgres connections, `COPY TO STDOUT` stream piped into `COPY FROM STDIN`. */
async function nodePipe(srcPort: number, dstPort: number): Promise<number> {
  const a = new pg.Client({ host: '127.0.0.1', port: srcPort, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'src' });
  const b = new pg.Client({ host: '127.0.0.1', port: dstPort, user: SUPERUSER, password: SUPERUSER_PASSWORD, database: 'pipenode' });
  await a.connect();
  await b.connect();
  try {
    const { seconds } = await timed(() => pipeline(a.query(copyTo('COPY t TO STDOUT (FORMAT binary)')), b.query(copyFrom('COPY t FROM STDIN (FORMAT binary)'))));
    return seconds;
  } finally {
    await a.end();
    await b.end();
  }
}

function machineNote(s: Settings): string {
  const c = cpus();
  return [
    machineLine(),
    `source and destination are two PostgreSQL servers on this machine (fsync=off); every copier, both servers and this process share the ${c.length} CPU(s).`,
    `rows: ${fmtNum(s.rows)}; destination tables ${s.pk ? 'WITH a primary key (as schema sync creates them)' : 'without a primary key'} during the copy`,
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const s = parseSettings(argv);
  if (!s) return 0;
  console.log(machineNote(s));
  const src = await LocalPostgres.start({ settings: PG_SETTINGS });
  const dst = await LocalPostgres.start({ settings: PG_SETTINGS });
  const env = libpqEnv(SUPERUSER_PASSWORD);
  const uri = (pg: LocalPostgres, db: string) => `postgres://${SUPERUSER}@127.0.0.1:${pg.port}/${db}`;
  const results: Result[] = [];
  try {
    await src.sql('CREATE DATABASE src');
    await src.sql(tableDdl(true), 'src');
    console.log(`\nbuilding source table t with ${fmtNum(s.rows)} rows ...`);
    const build = await timed(async () => {
      await fillTable(src, 'src', s.rows);
      // Set hint bits and the visibility map now, so no measured copy pays for it.
      await src.sql('VACUUM (FREEZE, ANALYZE) t', 'src');
      await src.sql('CREATE PUBLICATION bench_pub FOR TABLE t', 'src');
      await src.sql('CHECKPOINT');
    });
    const size = await src.sql(`SELECT pg_relation_size('t'), pg_relation_size('t') / current_setting('block_size')::int8`, 'src');
    const heapBytes = Number(size[0][0]);
    const blocks = Number(size[0][1]);
    console.log(`built in ${build.seconds.toFixed(0)} s: heap ${(heapBytes / 2 ** 20).toFixed(0)} MiB (${fmtNum(blocks)} blocks)`);

    let streamBytes = NaN;
    for (const v of s.variants) {
      process.stdout.write(`  ${v.padEnd(18)} ... `);
      let r: Result;
      if (v === 'pipe') {
        await freshDb(dst, 'pipe', s.pk);
        const cmd =
          `psql -X -q -v ON_ERROR_STOP=1 -d ${shq(uri(src, 'src'))} -c 'COPY t TO STDOUT (FORMAT binary)' | ` +
          `psql -X -q -v ON_ERROR_STOP=1 -d ${shq(uri(dst, 'pipe'))} -c 'COPY t FROM STDIN (FORMAT binary)'`;
        const out = await runShell(cmd, env);
        if (out.code !== 0) throw new Error(`psql pipe failed (exit ${out.code}):\n${out.out}`);
        r = { label: 'binary COPY pipe (psql → psql), 1 → 1', seconds: out.seconds, rows: await countRows(dst, 'pipe'), note: '' };
        await dst.sql('DROP DATABASE pipe');
      } else if (v === 'pipe-node') {
        await freshDb(dst, 'pipenode', s.pk);
        const seconds = await nodePipe(src.port, dst.port);
        r = { label: 'binary COPY pipe (node-postgres + pg-copy-streams), 1 → 1', seconds, rows: await countRows(dst, 'pipenode'), note: '' };
        await dst.sql('DROP DATABASE pipenode');
      } else if (v === 'pgcopydb') {
        await freshDb(dst, 'pgcopydb', s.pk, false);
        const dir = tempDir('pgshift-bench-pgcopydb-');
        const cmd = `pgcopydb clone --source ${shq(uri(src, 'src'))} --target ${shq(uri(dst, 'pgcopydb'))} --dir ${shq(join(dir, 'work'))} --no-owner --no-acl --skip-extensions`;
        const probe = await runShell('command -v pgcopydb', env);
        if (probe.code !== 0) {
          console.log('skipped');
          results.push({ label: 'pgcopydb clone', seconds: NaN, rows: NaN, note: 'pgcopydb not installed (apt-get install pgcopydb)' });
          continue;
        }
        const out = await runShell(cmd, env);
        if (out.code !== 0) {
          console.log(`failed (exit ${out.code})`);
          results.push({ label: 'pgcopydb clone', seconds: NaN, rows: NaN, note: `pgcopydb failed: ${out.out.split('\n').filter((l) => /ERROR|FATAL/.test(l)).slice(0, 2).join(' / ').slice(0, 200)}` });
          continue;
        }
        // Its summary table has a "COPY (cumulative)" line: the data part, without schema and indexes.
        const copyLine = out.out.split('\n').find((l) => /COPY \(cumulative\)/.test(l));
        r = { label: 'pgcopydb clone (schema + data + PK index + vacuum)', seconds: out.seconds, rows: await countRows(dst, 'pgcopydb'), note: copyLine ? `its summary: ${copyLine.replace(/\s+/g, ' ').trim()}` : '' };
        await dst.sql('DROP DATABASE pgcopydb');
      } else {
        const shards = v === 'pgshift-1to1' ? 1 : 2;
        const par = v === 'pgshift-1to2-par';
        const parallel = par ? s.parallel : 1;
        const chunk = par ? (s.chunkBlocks ?? Math.ceil(blocks / s.parallel)) : 0;
        const c = await pgshiftCopy(src, dst, shards, parallel, chunk, s.pk);
        if (Number.isNaN(streamBytes)) streamBytes = c.bytes + 21; // tuples + 19-byte header + 2-byte trailer
        const total = c.perShard.reduce((a, b) => a + b, 0);
        r = {
          label: `pgshift copyData 1 → ${shards}${par ? `, ${parallel} workers × ctid ranges` : ', 1 worker'}`,
          seconds: c.seconds,
          rows: total,
          note: shards > 1 ? `per shard ${c.perShard.map((x) => fmtNum(x)).join(' / ')}` : '',
        };
      }
      if (r.rows !== s.rows) r.note = `${r.note}${r.note ? '; ' : ''}WRONG ROW COUNT ${r.rows}`.trim();
      console.log(`${r.seconds.toFixed(1)} s`);
      results.push(r);
    }

    if (Number.isNaN(streamBytes)) {
      const out = await runShell(`psql -X -q -d ${shq(uri(src, 'src'))} -c 'COPY t TO STDOUT (FORMAT binary)' | wc -c`, env);
      streamBytes = Number(out.out.trim());
    }
    const pipe = results.find((r) => r.label.startsWith('binary COPY pipe'));
    const head = ['copier', 'seconds', 'rows/s', 'MB/s', 'vs pipe', 'note'];
    const rows = results.map((r) => {
      const rps = r.rows / r.seconds;
      return [r.label, Number.isNaN(r.seconds) ? 'n/a' : r.seconds.toFixed(1), fmtNum(rps), fmtNum(streamBytes / 1e6 / r.seconds, 1), pipe ? ratio(pipe.seconds, r.seconds) : 'n/a', r.note];
    });
    console.log(`\nResults (MB = 10^6 bytes of binary COPY stream: ${fmtNum(streamBytes / 1e6, 0)} MB for ${fmtNum(s.rows)} rows; heap ${fmtNum(heapBytes / 1e6, 0)} MB)\n`);
    console.log(formatTable(head, rows));
    console.log('\n"vs pipe" = pipe seconds / copier seconds (throughput ratio; the goal for pgshift 1 → 2 is ≥ 0.9x).');
    console.log(machineNote(s));
    if (s.markdown) console.log(`\n${formatMarkdown(head, rows)}\n`);
    return results.some((r) => r.note.includes('WRONG ROW COUNT')) ? 1 : 0;
  } finally {
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
