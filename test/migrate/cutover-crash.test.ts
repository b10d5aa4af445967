// kill -9 of pgshift at each named step of a cutover (PGSHIFT_FAULT, deterministic), with an
// application writing through pgshift and keeping a ledger of every acknowledged write, then a
// restart with the same config files and state directory. After the restart pgshift serves the
// cluster the journal says (the source before the switch, the destination after it), every
// acknowledged write is there with its value, nothing is doubled, nothing is only on the other
// cluster once replication catches up, no replication slot is left that no task owns, and the
// move goes on (the next CUTOVER works). Plus graceful SIGTERM restarts after a finished cutover
// and after a rollback, and a crash during recovery itself.
//
// `npm test` runs a few representative steps; PGSHIFT_FAULTS_ALL=1 runs every step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poll, sleep } from './crash-helpers.js';
import { ledgerMoves, startMove, startApp, waitTask, assertNoOrphanSlots, assertLedger, servedBy, cutoverOutcome } from './ledger-move.js';

const ALL = ['reverse_intended', 'reverse_created', 'barrier', 'sequences', 'switched', 'resumed', 'reverse_task', 'forward_finished', 'done'] as const;
type Step = (typeof ALL)[number];
// Roll-forward is covered by default too: 'switched' (then 'reverse_task' during recovery) in the
// crash-during-recovery test, 'barrier' by the RESHARD test, a finished cutover by the SIGTERM test.
const DEFAULT: Step[] = ['reverse_created'];
const STEPS: readonly Step[] = process.env.PGSHIFT_FAULTS_ALL ? ALL : DEFAULT;
const SWITCHED: Step[] = ['switched', 'resumed', 'reverse_task', 'forward_finished', 'done'];

const moves = ledgerMoves();
const setUp = (general?: string) => moves.setUp(general);

for (const step of STEPS) {
  test(`kill -9 at cutover step ${step}: after a restart pgshift serves the ${SWITCHED.includes(step) ? 'destination' : 'source'}, no acknowledged write is lost or doubled, no slot is orphaned, and the next CUTOVER works`, async (t) => {
    const t0 = Date.now();
    const m = await setUp();
    await startMove(m, { PGSHIFT_FAULT: step });
    const cut = m.p.admin('CUTOVER 1').then(
      () => 'answered',
      (e: Error) => e.message,
    );
    await m.p.waitExit(30000);
    await cut;
    assert.match(m.p.output, new RegExp(`PGSHIFT_FAULT: killing pgshift at ${step}`), 'the fault hook fired at the named step');
    await sleep(300); // the application keeps trying while pgshift is down
    await m.p.start();
    const switched = SWITCHED.includes(step);
    assert.equal(await servedBy(m), switched ? 'destination' : 'source', `routing after the restart\n${m.explain()}`);
    const routing = (await m.p.admin('SHOW ROUTING')).find((r) => r.database === 'app')!;
    assert.equal(routing.differs, switched ? 't' : 'f', `SHOW ROUTING says whether the serving layout differs from the file: ${JSON.stringify(routing)}`);
    const forward = await waitTask(m, '1', (x) => (switched ? x.status === 'finished' : x.inner_status === 'replicating'));
    assert.equal(forward.cutover_phase, switched ? 'done' : 'rolled_back', `the journal's phase in SHOW TASKS: ${JSON.stringify(forward)}`);
    const reverse = switched ? await waitTask(m, '2', (x) => x.inner_status === 'replicating' && x.type!.includes('(reverse)')) : null;
    await assertNoOrphanSlots(m);
    await poll('the application to write after the restart', async () => (m.app.ops > 0 && m.app.acked.size >= 60 ? true : undefined), 20000, m.explain);
    const served = switched ? m.dest : m.source;
    const other = switched ? m.source : m.dest;
    await assertLedger(m, served, other, `after kill -9 at ${step}`);

    // The move goes on: roll back (after the switch) or cut over again (before it), under writes.
    const before = m.app.acked.size;
    m.app.resume();
    await poll('writes before the next cutover', async () => (m.app.acked.size >= before + 20 ? true : undefined), 20000, m.explain);
    const next = reverse ? reverse.id! : '1';
    const [r] = await m.p.admin(`CUTOVER ${next}`);
    assert.equal(r.cutover, 'OK');
    await sleep(200);
    assert.equal(await servedBy(m), switched ? 'source' : 'destination', 'the next CUTOVER moved traffic');
    await assertLedger(m, other, served, `after the CUTOVER ${next} that followed`);
    await assertNoOrphanSlots(m);
    t.diagnostic(`step ${step}: ${m.app.acked.size} acknowledged writes checked after the second cutover; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await m.p.stop();
  });
}

test('a crash during recovery recovers the same way: kill -9 at switched, then again while recovery records the reverse task; the third start finishes the cutover with nothing lost', async () => {
  const m = await setUp();
  await startMove(m, { PGSHIFT_FAULT: 'switched' });
  void m.p.admin('CUTOVER 1').catch(() => undefined);
  await m.p.waitExit(30000);
  await m.p.start(20000, { PGSHIFT_FAULT: 'reverse_task' }).catch(() => undefined);
  await m.p.waitExit(30000);
  assert.match(m.p.output, /PGSHIFT_FAULT: killing pgshift at reverse_task/, 'recovery itself was killed');
  await m.p.start();
  assert.equal(await servedBy(m), 'destination');
  await waitTask(m, '1', (x) => x.status === 'finished' && x.cutover_phase === 'done');
  const reverses = (await m.p.admin('SHOW TASKS')).filter((x) => x.type!.includes('(reverse)'));
  assert.equal(reverses.length, 1, `one reverse task, not one per recovery attempt: ${JSON.stringify(reverses)}`);
  await waitTask(m, reverses[0].id!, (x) => x.inner_status === 'replicating');
  await assertNoOrphanSlots(m);
  await poll('writes after the restart', async () => (m.app.acked.size >= 60 ? true : undefined), 20000, m.explain);
  await assertLedger(m, m.dest, m.source, 'after two crashes');
  await m.p.stop();
});

test('graceful restarts (SIGTERM) after a finished cutover and after its rollback keep serving the cluster the last cutover chose, with every acknowledged write', async () => {
  const m = await setUp();
  await startMove(m);
  const [r] = await m.p.admin('CUTOVER 1');
  const reverseId = r.reverse_task_id!;
  await m.p.stop();
  await m.p.start();
  assert.equal(await servedBy(m), 'destination', 'still the destination after a clean restart');
  assert.match(m.p.output, /SERVING A CUTOVER LAYOUT THAT DIFFERS FROM THE CONFIG FILES/, 'the start says so loudly');
  await waitTask(m, reverseId, (x) => x.inner_status === 'replicating');
  await poll('writes after the restart', async () => (m.app.acked.size >= 60 ? true : undefined), 20000, m.explain);
  const refused = await m.p.admin('DISCARD_ROUTING').then(
    () => 'accepted',
    (e: Error) => e.message,
  );
  assert.match(refused, /DISCARD_ROUTING refused: task \d+ .*reverse/, 'discarding the routing is refused while the reverse task would lose writes');
  await m.p.admin(`CUTOVER ${reverseId}`);
  await m.p.stop();
  await m.p.start();
  assert.equal(await servedBy(m), 'source', 'the source after the rollback and a clean restart');
  const routing = (await m.p.admin('SHOW ROUTING')).find((x) => x.database === 'app')!;
  assert.equal(routing.differs, 'f', 'after the rollback the serving layout is the file\'s again');
  await poll('writes after the second restart', async () => (m.app.acked.size >= 90 ? true : undefined), 20000, m.explain);
  const live = (await m.p.admin('SHOW TASKS')).find((x) => x.status === 'running');
  assert.ok(live, 'the rollback left a task replicating to the destination');
  await assertLedger(m, m.source, m.dest, 'after cutover, restart, rollback, restart');
  await assertNoOrphanSlots(m);
  await m.p.stop();
});

test("RESHARD's automatic cutover resumes after a kill -9 at its barrier: the restart rolls the attempt back, then RESHARD cuts over by itself with every acknowledged write", async () => {
  const m = await setUp();
  await m.p.start(20000, { PGSHIFT_FAULT: 'barrier' });
  startApp(m);
  await poll('the application to have written', async () => (m.app.acked.size >= 20 ? true : undefined), 20000, m.explain);
  await m.p.admin('RESHARD app app_new pub');
  await m.p.waitExit(60000);
  assert.match(m.p.output, /PGSHIFT_FAULT: killing pgshift at barrier/, 'the automatic cutover was killed at its barrier');
  await m.p.start();
  await waitTask(m, '1', (x) => x.status === 'finished' && x.cutover_phase === 'done', 60000);
  assert.equal(await servedBy(m), 'destination', 'RESHARD finished its cutover after the restart');
  const reverse = (await m.p.admin('SHOW TASKS')).find((x) => x.type!.includes('(reverse)'));
  assert.ok(reverse, 'the reverse task exists');
  await waitTask(m, reverse.id!, (x) => x.inner_status === 'replicating');
  await assertNoOrphanSlots(m);
  await assertLedger(m, m.dest, m.source, 'after RESHARD resumed');
  await m.p.stop();
});

test('the destination stalls during the barrier (pgshift-apply backends SIGSTOPped) until cutover_timeout: the cutover aborts with traffic on the source, the journal says rolled_back, no reverse slot is left, nothing is lost, and a later CUTOVER works', async () => {
  const m = await setUp('cutover_timeout = 3000\n');
  await startMove(m);
  // Freeze the apply connections between transactions: one frozen inside a transaction would
  // also block the reverse slot's creation (it waits for running transactions), and the cutover
  // would abort before the pause instead of at the barrier this test is about.
  const appliers = async () => {
    const pids: number[] = [];
    for (const d of m.dest) {
      const rows = await d.pg.query<{ pid: number; state: string }>(`SELECT pid, state FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pgshift-apply'`, [d.db]);
      if (rows.some((r) => r.state !== 'idle')) return undefined;
      for (const r of rows) pids.push(r.pid);
    }
    return pids;
  };
  // The writer pauses while the appliers catch up and are frozen, then writes on.
  await m.app.stop();
  const frozen = await poll('every apply connection idle between transactions', appliers, 10000, m.explain);
  assert.ok(frozen.length > 0, 'the apply connections were found');
  for (const pid of frozen) process.kill(pid, 'SIGSTOP');
  m.app.resume();
  let answer: string;
  try {
    const t0 = Date.now();
    answer = await cutoverOutcome(m);
    assert.ok(Date.now() - t0 < 15000, `CUTOVER answered within the timeout plus slack (${Date.now() - t0} ms)`);
    const acked = m.app.acked.size;
    await poll('writes on the source while the destination is still stalled', async () => (m.app.acked.size >= acked + 10 ? true : undefined), 20000, m.explain);
  } finally {
    for (const pid of frozen) process.kill(pid, 'SIGCONT');
  }
  assert.match(answer, /cutover aborted, traffic resumed on the source with nothing changed/, 'the documented outcome');
  const aborted = m.p.output.split('\n').find((l) => l.includes('cutover aborted: traffic resumed on the source')) ?? '';
  assert.ok(Number(/"pausedMs":(\d+)/.exec(aborted)?.[1] ?? 0) >= 2500, `the abort came from the barrier with traffic paused for about cutover_timeout, not before the pause: ${aborted}`);
  assert.equal(await servedBy(m), 'source');
  const t = await waitTask(m, '1', (x) => x.inner_status === 'replicating');
  assert.equal(t.cutover_phase, 'rolled_back', 'the journal recorded the rollback');
  await assertNoOrphanSlots(m);
  await assertLedger(m, m.source, m.dest, 'after the stalled cutover');
  m.app.resume();
  const [r] = await m.p.admin('CUTOVER 1');
  assert.equal(r.cutover, 'OK', 'a later CUTOVER works once the destination keeps up');
  await assertLedger(m, m.dest, m.source, 'after the later CUTOVER');
  await m.p.stop();
});
