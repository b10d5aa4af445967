/**
 * VERIFY benchmark: the copy benchmark's table (bench/copy.ts: bigint id, int, ~40-byte text,
 * numeric, timestamptz) on a source server and split by id over two destination shards, then
 *
 *   plain    `SELECT count(*), sum(hashtextextended(t::text, 0)) FROM t` on the source and on
 *            each destination shard, all at once: one full scan per side, the least any
 *            row-level comparison must do (it proves equality of the sums, nothing more);
 *   verify   VERIFY src dst (the product path: chunked key ranges, count + hash per chunk and
 *            shard, placement of every shard key, sequences), --parallel tables at once.
 *
 * Prints rows/s, the ratio verify / plain, and this process's peak RSS and heap during VERIFY.
 *
 *   node dist/bench/verify.js [--rows 1000000] [--chunk-rows 10000] [--parallel 2]
 */
import { parseArgs } from 'node:util';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalPostgres, SUPERUSER, SUPERUSER_PASSWORD } from '../src/cli/local-postgres.js';
import { parseConfig } from '../src/config/index.js';
import { silentLogger } from '../src/observe/log.js';
import { TaskRegistry } from '../src/migrate/tasks/task-registry.js';
import { verifyOutcome } from '../src/migrate/verify/verify-task.js';
import { startVerify } from '../src/migrate/verify/verify-start.js';
import { summaryText } from '../src/migrate/verify/report.js';
import { PG_SETTINGS, fillTable, tableDdl } from './copy.js';
import { timed, fmtNum, ratio } from './lib/shell.js';
import { intOption, machineLine } from './lib/options.js';
import { formatTable } from './lib/table.js';

const HELP = `verify benchmark: VERIFY vs a plain count(*) + hash query over both sides

options:
  --rows N         rows in the table                  default 1000000
  --chunk-rows N   verify_chunk_rows                  default 10000
  --parallel N     verify_parallel                    default 2`;

const SHARDS = 2;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { rows: { type: 'string' }, 'chunk-rows': { type: 'string' }, parallel: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const rows = intOption('rows', values.rows, 1_000_000);
  const chunkRows = intOption('chunk-rows', values['chunk-rows'], 10_000);
  const parallel = intOption('parallel', values.parallel, 2);
  console.log(machineLine());
  console.log(`source and destination: two PostgreSQL servers on this machine; ${fmtNum(rows)} rows, ${SHARDS} destination shards, chunk ${fmtNum(chunkRows)} rows`);
  const src = await LocalPostgres.start({ settings: PG_SETTINGS });
  const dst = await LocalPostgres.start({ settings: PG_SETTINGS });
  try {
    await src.sql('CREATE DATABASE src');
    await src.sql(tableDdl(true), 'src');
    await fillTable(src, 'src', rows);
    for (let i = 0; i < SHARDS; i++) {
      await dst.sql(`CREATE DATABASE dst_${i}`);
      await dst.sql(`${tableDdl(true)}; CREATE TABLE oracle (k bigint) PARTITION BY HASH (k)`, `dst_${i}`);
      // PostgreSQL's own hash partitioning places the rows: the rule pgshift's sharder matches.
      await fillTable(dst, `dst_${i}`, rows, `satisfies_hash_partition('oracle'::regclass, ${SHARDS}, ${i}, g)`);
    }
    for (const [pg, dbs] of [[src, ['src']], [dst, Array.from({ length: SHARDS }, (_, i) => `dst_${i}`)]] as const) {
      for (const d of dbs) await pg.sql('VACUUM (FREEZE, ANALYZE) t', d);
    }

    const plain = await timed(() =>
      Promise.all([
        src.sql('SELECT count(*), sum(hashtextextended(t::text, 0)) FROM t', 'src'),
        ...Array.from({ length: SHARDS }, (_, i) => dst.sql('SELECT count(*), sum(hashtextextended(t::text, 0)) FROM t', `dst_${i}`)),
      ]),
    );

    const db = (name: string, port: number, database: string, shard: number) => `[[databases]]\nname = "${name}"\nhost = "127.0.0.1"\nport = ${port}\ndatabase_name = "${database}"\nshard = ${shard}\n`;
    const toml = [
      `[general]\nverify_chunk_rows = ${chunkRows}\nverify_parallel = ${parallel}\n`,
      db('src', src.port, 'src', 0),
      ...Array.from({ length: SHARDS }, (_, i) => db('dst', dst.port, `dst_${i}`, i)),
      `[[sharded_tables]]\ndatabase = "dst"\nname = "t"\ncolumn = "id"\ndata_type = "bigint"\n`,
    ].join('\n');
    const users = ['src', 'dst'].map((d) => `[[users]]\nname = "${SUPERUSER}"\ndatabase = "${d}"\npassword = "${SUPERUSER_PASSWORD}"\n`).join('\n');
    const config = parseConfig(toml, users, {}, {});
    const ctx = { config: () => config, log: silentLogger(), stateDir: mkdtempSync(join(tmpdir(), 'pgshift-bench-verify-')) };
    const reg = await TaskRegistry.open(ctx.stateDir, ctx.log);
    const base = process.memoryUsage();
    let peakRss = base.rss;
    let peakHeap = base.heapUsed;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed);
    }, 20);
    const verify = await timed(async () => {
      const t = await startVerify(reg, ctx, { source: 'src', destination: 'dst' });
      await t.done;
      return t;
    });
    clearInterval(sampler);
    const { state } = verifyOutcome(verify.value);
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
    console.log(
      formatTable(
        ['method', 'seconds', 'rows/s (source rows)', 'vs plain'],
        [
          ['plain count(*) + hash, all sides at once', plain.seconds.toFixed(2), fmtNum(rows / plain.seconds), '1.00x'],
          [`VERIFY (chunk ${chunkRows}, parallel ${parallel})`, verify.seconds.toFixed(2), fmtNum(rows / verify.seconds), ratio(verify.seconds, plain.seconds)],
        ],
      ),
    );
    console.log(`VERIFY: ${summaryText(state)}`);
    console.log(`memory during VERIFY: peak RSS ${mib(peakRss)} (${mib(peakRss - base.rss)} above the start), peak heap ${mib(peakHeap)} (${mib(peakHeap - base.heapUsed)} above the start)`);
    return verify.value.status === 'finished' && state.tables.every((x) => x.status === 'ok') ? 0 : 1;
  } finally {
    await Promise.all([src.stop(), dst.stop()]);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
