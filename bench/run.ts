/**
 * `./run bench [name...] [options]`: runs the named benchmarks (default: all of them, see
 * bench/lib/benchmarks.ts). Options (everything from the first argument starting with `-`) are
 * passed to each module benchmark, e.g. `./run bench pooler --seconds 5`.
 */
import { BENCHMARKS } from './lib/benchmarks.js';

function usage(): string {
  return [
    'usage: node dist/bench/run.js [name...] [options for the benchmarks]',
    '',
    'benchmarks:',
    ...BENCHMARKS.map((b) => `  ${b.name.padEnd(12)} ${b.description}`),
    '',
    'Options go to the module benchmarks (pooler); `pooler --help` lists them. Script benchmarks take none.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const firstOpt = argv.findIndex((a) => a.startsWith('-'));
  const names = firstOpt < 0 ? argv : argv.slice(0, firstOpt);
  const opts = firstOpt < 0 ? [] : argv.slice(firstOpt);
  if (names.length === 0 && (opts.includes('--help') || opts.includes('-h') || opts.includes('--list'))) {
    console.log(usage());
    return 0;
  }
  const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length) {
    console.error(`unknown benchmark ${unknown.map((n) => `"${n}"`).join(', ')}\n\n${usage()}`);
    return 2;
  }
  const selected = names.length ? names.map((n) => BENCHMARKS.find((b) => b.name === n)!) : BENCHMARKS;
  let worst = 0;
  for (const b of selected) {
    console.log(`\n=== benchmark: ${b.name} — ${b.description} ===\n`);
    const started = Date.now();
    let code: number;
    try {
      code = await b.run(opts);
    } catch (err) {
      // Usage mistakes and setup failures read best as one message; set PGSHIFT_BENCH_DEBUG for the stack.
      const detail = err instanceof Error ? (process.env.PGSHIFT_BENCH_DEBUG ? (err.stack ?? err.message) : err.message) : String(err);
      console.error(`benchmark ${b.name} failed: ${detail}`);
      code = 1;
    }
    console.log(`\n=== ${b.name}: ${code === 0 ? 'done' : `exit ${code}`} in ${((Date.now() - started) / 1000).toFixed(0)} s ===`);
    worst = Math.max(worst, code);
  }
  return worst;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
