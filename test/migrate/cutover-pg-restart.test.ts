// PostgreSQL restarted (immediate shutdown, like a crash) at a named step of a move, with an
// application writing through pgshift and keeping a ledger of every acknowledged write. The
// test-only hook PGSHIFT_FAULT=<step> with PGSHIFT_FAULT_PAUSE=<file> holds pgshift exactly at
// the step while the server restarts, then lets it go on. Each case ends with its documented
// outcome (docs/crash-safety.md), every acknowledged write on the cluster pgshift serves, the
// other cluster caught up to the same rows, and no slot that no task owns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { poll, sleep } from './crash-helpers.js';
import { ledgerMoves, startApp, startMove, waitTask, assertNoOrphanSlots, assertLedger, servedBy, moreWrites, slotsOn, type Move, cutoverOutcome } from './ledger-move.js';

const moves = ledgerMoves();
const GENERAL = 'cutover_timeout = 20000\nresharding_replication_retry_min_delay = 300\n';

/** The environment that holds pgshift at `step`, and a function that waits until it is held there. */
function pauseAt(m: Move, step: string): { env: Record<string, string>; held: () => Promise<void>; release: () => void } {
  const file = join(m.dir, `pause-${step}`);
  return {
    env: { PGSHIFT_FAULT: step, PGSHIFT_FAULT_PAUSE: file },
    held: async () => {
      await poll(`pgshift to be held at ${step}`, async () => (existsSync(file) ? true : undefined), 30000, m.explain);
    },
    release: () => {
      if (existsSync(file)) unlinkSync(file);
    },
  };
}

// `npm test` runs the cases that end aborted, resumed and failed; PGSHIFT_FAULTS_ALL=1 adds the completed one.
const ALL = !!process.env.PGSHIFT_FAULTS_ALL;

if (ALL) test('the destination restarted (immediate) while the cutover holds at reverse_created, before the pause: replication reconnects, the cutover completes on the destination, nothing is lost, no slot is orphaned', async () => {
  const m = await moves.setUp(GENERAL);
  const pause = pauseAt(m, 'reverse_created');
  await startMove(m, pause.env);
  const answer = m.p.admin('CUTOVER 1').then(
    (r) => r[0].cutover ?? '',
    (e: Error) => e.message,
  );
  try {
    await pause.held();
    await m.dst.restart('immediate');
  } finally {
    pause.release();
  }
  assert.equal(await answer, 'OK', `the cutover completed\n${m.explain()}`);
  assert.equal(await servedBy(m), 'destination');
  const reverse = (await m.p.admin('SHOW TASKS')).find((x) => x.type!.includes('(reverse)'));
  assert.ok(reverse, 'the reverse task exists');
  await waitTask(m, reverse.id!, (x) => x.inner_status === 'replicating');
  await moreWrites(m, 20);
  await assertLedger(m, m.dest, m.source, 'after the destination restart during the cutover');
  await assertNoOrphanSlots(m);
  await m.p.stop();
});

test('the destination restarted (immediate) while the cutover holds at barrier, traffic paused: the cutover aborts with traffic on the source, the reverse slots are dropped, forward replication reconnects, nothing is lost, and the next CUTOVER works', async () => {
  const m = await moves.setUp(GENERAL);
  const pause = pauseAt(m, 'barrier');
  await startMove(m, pause.env);
  const answer = cutoverOutcome(m);
  try {
    await pause.held();
    await m.dst.restart('immediate');
  } finally {
    pause.release();
  }
  assert.match(await answer, /cutover aborted, traffic resumed on the source with nothing changed/, `the documented outcome\n${m.explain()}`);
  assert.equal(await servedBy(m), 'source');
  const t = await waitTask(m, '1', (x) => x.inner_status === 'replicating', 30000);
  assert.equal(t.cutover_phase, 'rolled_back', 'the journal recorded the rollback');
  await moreWrites(m, 20);
  await assertLedger(m, m.source, m.dest, 'after the aborted cutover');
  await assertNoOrphanSlots(m);
  m.app.resume();
  const [r] = await m.p.admin('CUTOVER 1');
  assert.equal(r.cutover, 'OK', 'the next CUTOVER works');
  await moreWrites(m, 10);
  await assertLedger(m, m.dest, m.source, 'after the next CUTOVER');
  await assertNoOrphanSlots(m);
  await m.p.stop();
});

test('the source restarted (immediate) during the copy, its snapshot lost: the task waits for the source (SHOW TASKS: reconnecting), copies again from a fresh slot, replicates, and every acknowledged write ends on both clusters with one slot on the source', async () => {
  const m = await moves.setUp(GENERAL);
  const pause = pauseAt(m, 'copy_started');
  await m.p.start(20000, pause.env);
  startApp(m);
  await poll('the application to have written', async () => (m.app.acked.size >= 20 ? true : undefined), 20000, m.explain);
  await m.p.admin('COPY_DATA app app_new pub');
  try {
    await pause.held();
    await m.src.stopServer('immediate');
  } finally {
    pause.release();
  }
  try {
    await waitTask(m, '1', (x) => /^syncing data \(reconnecting, attempt \d+\/10: /.test(x.inner_status ?? ''), 20000);
    await sleep(1000);
  } finally {
    await m.src.startServer();
  }
  await waitTask(m, '1', (x) => x.inner_status === 'replicating', 60000);
  assert.match(m.p.output, /copy was cut off midway; dropping its slots and copying every table again/, 'the copy started over');
  await moreWrites(m, 20);
  await assertLedger(m, m.source, m.dest, 'after the source restart during the copy');
  await assertNoOrphanSlots(m);
  assert.deepEqual(await slotsOn(m.source), ['pgshift_1'], 'one slot on the source: the task\'s');
  await m.p.admin('STOP_TASK 1'); // slot names are cluster-wide
  await m.p.stop();
});

test('a copy whose source stays down past the retry attempts fails with an actionable error; once the source is back STOP_TASK leaves no slot and COPY_DATA again completes the move', async () => {
  const m = await moves.setUp('resharding_replication_retry_max_attempts = 2\nresharding_replication_retry_min_delay = 200\n');
  const pause = pauseAt(m, 'copy_started');
  await m.p.start(20000, pause.env);
  startApp(m);
  await m.p.admin('COPY_DATA app app_new pub');
  try {
    await pause.held();
    await m.src.stopServer('immediate');
  } finally {
    pause.release();
  }
  let failed: string;
  try {
    failed = await poll('the task to fail', async () => {
      const t = (await m.p.admin('SHOW TASKS')).find((r) => r.id === '1');
      return t?.status?.startsWith('failed') ? t.status : undefined;
    }, 30000, m.explain);
  } finally {
    await m.src.startServer();
  }
  assert.match(failed, /the copy of task 1 failed: a server stayed unreachable through 2 attempts/, 'the error says what happened');
  const stop = await m.p.admin('STOP_TASK 1').then((r) => JSON.stringify(r), (e: Error) => e.message); // drops the slot if the failure could not
  assert.deepEqual(await slotsOn(m.source), [], `no slot left on the source (task: ${failed}; STOP_TASK: ${stop})\n${m.explain()}`);
  assert.deepEqual((await m.p.admin('SHOW ORPHANS')).filter((r) => r.kind === 'slot'), [], 'no orphan');
  const [again] = await m.p.admin('COPY_DATA app app_new pub');
  await waitTask(m, again.task_id!, (x) => x.inner_status === 'replicating', 60000);
  await moreWrites(m, 20);
  await assertLedger(m, m.source, m.dest, 'after COPY_DATA again');
  await m.p.admin(`STOP_TASK ${again.task_id}`);
  await m.p.stop();
});
