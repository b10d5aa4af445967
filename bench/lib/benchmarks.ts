/**
 * Every benchmark `./run bench` knows, in the order they run by default. To add one (copy,
 * replication, cutover ...), write bench/<name>.ts exporting `main(argv): Promise<number>` and
 * add a moduleBenchmark line here (scripts that run at import time: scriptBenchmark).
 */
import { moduleBenchmark, scriptBenchmark, type Benchmark } from './registry.js';

export const BENCHMARKS: Benchmark[] = [
  scriptBenchmark('hash', 'shard function ns/key (int8, text, uuid keys)', 'hash.js'),
  scriptBenchmark('copy-parse', 'COPY binary/text codec throughput (MB/s, rows/s)', 'copy-binary-parse.js'),
  moduleBenchmark('pooler', 'pgbench direct vs PgBouncer vs pgshift (TPS, latency, ratios)', () => import('../pooler.js')),
];
