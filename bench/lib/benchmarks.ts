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
  moduleBenchmark('cutover', 'client-visible pause of CUTOVER under pgbench vs PgBouncer PAUSE/RESUME', () => import('../cutover.js')),
  moduleBenchmark('copy', 'table copy 1 → 2 shards: pgshift vs binary COPY pipe vs pgcopydb (rows/s, MB/s)', () => import('../copy.js')),
  moduleBenchmark('verify', 'VERIFY 1 → 2 shards vs a plain count(*) + hash over both sides (rows/s, ratio, memory)', () => import('../verify.js')),
  moduleBenchmark('replication', 'streaming apply under pgbench: pgshift 1/2 shards vs native subscription', () => import('../replication.js')),
  moduleBenchmark('fuzz', 'seeded protocol fuzzer vs pgshift under pgbench (crashes, failed tx, TPS ratio, memory)', () => import('../fuzz.js')),
  moduleBenchmark('router', 'routed pgbench through pgshift: 2 shards vs pass-through vs direct (TPS)', () => import('../router.js')),
];
