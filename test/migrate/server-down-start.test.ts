// A PostgreSQL server that is down when replication starts, or when a cutover checks the lag,
// is waited for with the same policy as a reconnect (resharding_replication_retry_max_attempts /
// _min_delay) instead of failing at once. pgshift runs as a child process with an application
// writing through it and keeping a ledger of every acknowledged write; after each fault the
// cluster pgshift serves holds every acknowledged write, the other cluster catches up to the
// same rows, and no replication slot is left that no task owns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { poll, sleep } from './crash-helpers.js';
import { ledgerMoves, startMove, waitTask, assertNoOrphanSlots, assertLedger, servedBy, moreWrites, type Move, cutoverOutcome } from './ledger-move.js';

const moves = ledgerMoves();
const RETRY = 'resharding_replication_retry_min_delay = 300\n';

/** Polls SHOW TASKS until task 1 shows a reconnect attempt (never failed meanwhile); returns its inner status. */
async function reconnecting(m: Move, what: RegExp): Promise<string> {
  const t = await waitTask(m, '1', (x) => what.test(x.inner_status ?? ''), 20000);
  return t.inner_status!;
}

// `npm test` runs the destination case; PGSHIFT_FAULTS_ALL=1 the source case too.
const DOWN = process.env.PGSHIFT_FAULTS_ALL ? (['destination', 'source'] as const) : (['destination'] as const);

for (const down of DOWN) {
  test(`a task resuming after a kill -9 while the ${down} is down waits for it (SHOW TASKS: reconnecting), resumes once it is back, and every acknowledged write ends on both clusters`, async (t) => {
    const t0 = Date.now();
    const m = await moves.setUp(RETRY);
    await startMove(m);
    const server = down === 'destination' ? m.dst : m.src;
    await m.p.kill9();
    await server.stopServer('immediate');
    try {
      await m.p.start();
      const shown = await reconnecting(m, /^replicating \(reconnecting, attempt \d+\/10: /);
      await sleep(2500); // several attempts fail meanwhile; the task must not fail
      await waitTask(m, '1', (x) => /reconnecting, attempt ([2-9]|10)\/10/.test(x.inner_status ?? ''), 10000);
      t.diagnostic(`while the ${down} was down: ${shown}`);
    } finally {
      await server.startServer();
    }
    await waitTask(m, '1', (x) => x.inner_status === 'replicating', 30000);
    await moreWrites(m, 20);
    await assertLedger(m, m.source, m.dest, `after the ${down} came back`);
    await assertNoOrphanSlots(m);
    t.diagnostic(`${m.app.acked.size} acknowledged writes checked; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await m.p.admin('STOP_TASK 1'); // slot names are cluster-wide: the next test's task is task 1 too
    await m.p.stop();
  });
}

test('CUTOVER while the destination is down waits within cutover_timeout; once the destination is back the cutover completes, with every acknowledged write on the destination and the source caught up', async () => {
  const m = await moves.setUp(`cutover_timeout = 20000\n${RETRY}`);
  await startMove(m);
  await m.dst.stopServer('immediate');
  let answer: Promise<string>;
  try {
    answer = cutoverOutcome(m);
    await sleep(2500);
    const early = await Promise.race([answer, sleep(0).then(() => 'still waiting')]);
    assert.equal(early, 'still waiting', 'the lag check waits for the destination instead of failing');
    assert.equal(await servedBy(m), 'source', 'traffic stays on the source meanwhile');
  } finally {
    await m.dst.startServer();
  }
  assert.equal(await answer, 'completed', `the cutover completed once the destination was back\n${m.explain()}`);
  assert.equal(await servedBy(m), 'destination');
  const reverse = (await m.p.admin('SHOW TASKS')).find((x) => x.type!.includes('(reverse)'));
  assert.ok(reverse, 'the reverse task exists');
  await waitTask(m, reverse.id!, (x) => x.inner_status === 'replicating');
  await moreWrites(m, 20);
  await assertLedger(m, m.dest, m.source, 'after the delayed cutover');
  await assertNoOrphanSlots(m);
  await m.p.stop();
});

test('CUTOVER while the source stays down past cutover_timeout aborts before any pause with traffic on the source and nothing recorded; forward replication resumes when the source is back, nothing is lost, and the next CUTOVER works', async () => {
  const m = await moves.setUp(`cutover_timeout = 3000\n${RETRY}`);
  await startMove(m);
  await m.src.stopServer('immediate');
  let answer: string;
  try {
    const t0 = Date.now();
    answer = await cutoverOutcome(m);
    assert.ok(Date.now() - t0 >= 2500 && Date.now() - t0 < 10000, `CUTOVER answered after about cutover_timeout (${Date.now() - t0} ms)`);
  } finally {
    await m.src.startServer();
  }
  assert.match(answer, /cutover aborted, traffic resumed on the source with nothing changed: .*not reachable for cutover_timeout \(3000 ms\)/, 'the documented outcome');
  assert.doesNotMatch(m.p.output, /cutover: traffic paused/, 'traffic was never paused');
  assert.equal(await servedBy(m), 'source');
  await waitTask(m, '1', (x) => x.inner_status === 'replicating', 30000);
  await moreWrites(m, 20);
  await assertLedger(m, m.source, m.dest, 'after the aborted cutover');
  await assertNoOrphanSlots(m);
  m.app.resume();
  const [r] = await m.p.admin('CUTOVER 1');
  assert.equal(r.cutover, 'OK', 'a later CUTOVER works once the source is back');
  await moreWrites(m, 10);
  await assertLedger(m, m.dest, m.source, 'after the later CUTOVER');
  await assertNoOrphanSlots(m);
  await m.p.stop();
});
