/**
 * Microbenchmark of the shard function on the router's hot path: ns per key for int8 and text
 * keys in each form they arrive in. Prints figures only; nothing is asserted.
 *
 *   npx tsc -p . && node dist/bench/hash.js
 */
import { createTableSharder } from '../src/sharding/index.js';
import type { ShardDataType } from '../src/config/types.js';

const SHARDS = 16;
const N = 2_000_000;

function sharder(t: ShardDataType) {
  return createTableSharder({ database: 'bench', name: 't', column: 'k', data_type: t }, [], SHARDS);
}

function measure(name: string, keys: number, fn: (i: number) => number): void {
  let sink = 0;
  for (let i = 0; i < 100_000; i++) sink += fn(i % keys); // warm up the JIT
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) sink += fn(i % keys);
  const ns = Number(process.hrtime.bigint() - start) / N;
  console.log(`${name.padEnd(34)} ${ns.toFixed(1).padStart(7)} ns/op  ${(1e3 / ns).toFixed(2).padStart(7)} M keys/s  (sink ${sink % 10})`);
}

const big = sharder('bigint');
const text = sharder('text');
const uuid = sharder('uuid');

const ints = Array.from({ length: 1024 }, (_, i) => String(i * 7919 - 4_000_000 + (i % 3 === 0 ? 9_000_000_000_000 : 0)));
const intBufs = ints.map((s) => Buffer.from(s));
const intBins = ints.map((s) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(s));
  return b;
});
const strs = Array.from({ length: 1024 }, (_, i) => `user-${i}@example.com`);
const strBufs = strs.map((s) => Buffer.from(s));
const uuids = Array.from({ length: 1024 }, (_, i) => `${i.toString(16).padStart(8, '0')}-e29b-41d4-a716-446655440000`);

console.log(`pgshift shard function, ${SHARDS} shards, ${N} keys per row (Node ${process.version})`);
measure('int8  text (JS string)', 1024, (i) => big.shardOfText(ints[i]));
measure('int8  text (utf8 Buffer, COPY)', 1024, (i) => big.shardOfText(intBufs[i]));
measure('int8  binary (8 bytes)', 1024, (i) => big.shardOfBinary(intBins[i], 0, 8));
measure('text  (JS string, ~22 chars)', 1024, (i) => text.shardOfText(strs[i]));
measure('text  (utf8 Buffer, ~22 bytes)', 1024, (i) => text.shardOfText(strBufs[i]));
measure('uuid  text (36 chars)', 1024, (i) => uuid.shardOfText(uuids[i]));
