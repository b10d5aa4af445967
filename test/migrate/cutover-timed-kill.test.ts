// kill -9 of pgshift at random moments (seeded: the seed is printed, and PGSHIFT_KILL_SEED=<n>
// replays one) while an application writes through pgshift and keeps a ledger of every
// acknowledged write: once during COPY_DATA (copy, or streaming once it has started), once
// during CUTOVER. After each kill pgshift restarts with the same config files and state
// directory. Whatever the moments, the cluster pgshift serves in the end holds every acknowledged
// write with its value, nothing is doubled, the other cluster catches up to the same rows, and
// no slot is left that no task owns.
//
// `npm test` runs two seeds; PGSHIFT_FAULTS_ALL=1 runs eight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poll, sleep } from './crash-helpers.js';
import { ledgerMoves, startApp, waitTask, assertNoOrphanSlots, assertLedger, servedBy, type Move } from './ledger-move.js';

const moves = ledgerMoves();
const SEEDS = process.env.PGSHIFT_KILL_SEED ? [Number(process.env.PGSHIFT_KILL_SEED)] : process.env.PGSHIFT_FAULTS_ALL ? [1, 2, 3, 4, 5, 6, 7, 8] : [1, 2];

/** mulberry32: a small seeded generator, so a failing seed replays the same moments. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function killAfter(m: Move, ms: number): Promise<void> {
  await sleep(ms);
  await m.p.kill9();
  await sleep(100);
  await m.p.start();
}

for (const seed of SEEDS) {
  test(`kill -9 at random moments during COPY_DATA and during CUTOVER (seed ${seed}): after restarts the served cluster holds every acknowledged write, the other catches up, no slot is orphaned`, async (t) => {
    const t0 = Date.now();
    const r = random(seed);
    const copyKillMs = Math.floor(r() * 1500);
    const cutoverKillMs = Math.floor(r() * 600);
    t.diagnostic(`seed ${seed}: kill ${copyKillMs} ms after COPY_DATA, ${cutoverKillMs} ms after CUTOVER (PGSHIFT_KILL_SEED=${seed} replays it)`);
    const m = await moves.setUp('cutover_timeout = 20000\nresharding_replication_retry_min_delay = 300\n');
    await m.p.start();
    startApp(m);
    await poll('the application to have written', async () => (m.app.acked.size >= 20 ? true : undefined), 20000, m.explain);
    await m.p.admin('COPY_DATA app app_new pub');
    await killAfter(m, copyKillMs);
    await waitTask(m, '1', (x) => x.inner_status === 'replicating', 60000);

    const cut = m.p.admin('CUTOVER 1').then(
      () => 'answered',
      (e: Error) => e.message,
    );
    await killAfter(m, cutoverKillMs);
    await cut;
    // Settled: either the cutover happened (task 1 finished, a reverse task replicating) or not (task 1 replicating).
    const settled = await poll(
      'the move to settle after the restart',
      async () => {
        const tasks = await m.p.admin('SHOW TASKS');
        const forward = tasks.find((x) => x.id === '1');
        if (forward?.status?.startsWith('failed')) assert.fail(`task 1 failed: ${forward.status}\n${m.explain()}`);
        if (forward?.inner_status === 'replicating' && forward.cutover_phase !== 'switched') return 'source' as const;
        const reverse = tasks.find((x) => x.type!.includes('(reverse)') && x.inner_status === 'replicating');
        if (forward?.status === 'finished' && reverse) return 'destination' as const;
        return undefined;
      },
      60000,
      m.explain,
    );
    assert.equal(await servedBy(m), settled, 'pgshift serves the cluster the tasks say');
    const before = m.app.acked.size;
    await poll('writes after the last restart', async () => (m.app.acked.size >= before + 20 ? true : undefined), 30000, m.explain);
    const [served, other] = settled === 'destination' ? [m.dest, m.source] : [m.source, m.dest];
    await assertLedger(m, served, other, `seed ${seed}`);
    await assertNoOrphanSlots(m);
    t.diagnostic(`seed ${seed}: served by the ${settled}; ${m.app.acked.size} acknowledged writes checked, ${m.app.uncertainInserts} unanswered inserts; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // Slot names are cluster-wide: the next seed's task is task 1 too.
    for (const x of await m.p.admin('SHOW TASKS')) if (x.status === 'running') await m.p.admin(`STOP_TASK ${x.id}`);
    await m.p.stop();
  });
}
