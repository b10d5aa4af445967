// Issue 9's randomized migration test: seeded schemas and workloads through the whole move
// (schema sync, copy, stream, cutover, rollback, cutover again) with a real `pgshift serve`,
// some seeds killing pgshift with SIGKILL mid-copy or mid-stream. Each seed ends with the ledger
// of acknowledged writes checked against the serving shards and both sides compared
// (assertMoveCorrect). A failure prints the seed, the generated schema and the replay command.
//
//   PGSHIFT_SEED=<n>        replay one seed
//   PGSHIFT_SEEDS=<count>   run <count> seeds starting at PGSHIFT_SEED_BASE (default 1000)
//   PGSHIFT_RANDOM_OFF=a,b  switch workload features off (sequenceIds, shardKeyUpdates, postgresJs,
//                           positionalInserts, multiRowInserts)
//   PGSHIFT_RANDOM_ON=movesWhileSharded  rows moving between shards while the sharded cluster
//                           serves (off by default: see Features.movesWhileSharded)
//
// Every seed also ends with pgshift's own VERIFY on the last reverse task: zero differences.
import { test } from 'node:test';
import { featuresFromEnv } from './workload.js';
import { planSeed, runSeed } from './scenario.js';

/**
 * The seeds `npm test` runs: 8 kills pgshift mid-copy, 10 kills nothing. Seeds that kill it
 * mid-stream (1, 9, 13) are left to PGSHIFT_SEED / PGSHIFT_SEEDS. Seed 1 used to report, now
 * and then, an acknowledged row missing on both sides after the restart: a gap in the ledger,
 * not a loss. postgres.js reconnected by itself after the kill and ran the rest of a cut
 * transaction outside it, so its COMMIT "succeeded" and the rolled-back writes counted as
 * acknowledged; clients.ts now fails such a session as a lost connection (clients.test.ts).
 */
const CI_SEEDS = [8, 10];

function seeds(): number[] {
  if (process.env.PGSHIFT_SEED) return [Number(process.env.PGSHIFT_SEED)];
  if (process.env.PGSHIFT_SEEDS) {
    const base = Number(process.env.PGSHIFT_SEED_BASE ?? 1000);
    return Array.from({ length: Number(process.env.PGSHIFT_SEEDS) }, (_, i) => base + i);
  }
  return CI_SEEDS;
}

const features = featuresFromEnv();
for (const seed of seeds()) {
  const { plan } = planSeed(seed);
  const kill = plan.kill ? `, kill -9 of pgshift during the ${plan.kill.phase}` : '';
  test(`seed ${seed}${kill}: after copy, stream, cutover, rollback and cutover again under writes, every acknowledged row is once on its shard and both sides are equal`, async (t) => {
    const t0 = Date.now();
    const report = await runSeed(seed, features, (m) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)}s ${m}`));
    t.diagnostic(`seed ${seed} done in ${((Date.now() - t0) / 1000).toFixed(1)}s: ${JSON.stringify(report.ops)}`);
  });
}
