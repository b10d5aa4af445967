// VERIFY as a task: progress in SHOW TASKS, STOP_TASK through the admin commands (the VERIFY
// answer says "stopped"), resume after a crash from the last finished chunk (every row counted
// exactly once), and cutover_verify refusing a cutover before the gate closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskRegistry } from '../../../src/migrate/tasks/task-registry.js';
import { resumeTasks, stopTask } from '../../../src/migrate/tasks/tasks.js';
import { runMigrationCommand } from '../../../src/admin/migration-commands.js';
import { cutoverTask, type CutoverContext } from '../../../src/migrate/cutover/cutover-task.js';
import { CutoverHistory } from '../../../src/migrate/cutover/cutover-history.js';
import { CutoverJournalFile } from '../../../src/migrate/cutover/cutover-journal.js';
import { PauseGate } from '../../../src/frontend/pause-gate.js';
import { verifyOutcome } from '../../../src/migrate/verify/verify-task.js';
import { startVerify } from '../../../src/migrate/verify/verify-start.js';
import { summarize } from '../../../src/migrate/verify/report.js';
import { moveContext, waitFor } from '../move-helpers.js';
import { startMove, caughtUp, tableState, useClusters } from './verify-helpers.js';

const clusters = useClusters();

test('VERIFY resumes after a crash from the last finished chunk: every row counted once, no row differences', async () => {
  const m = await startMove(clusters.src(), clusters.dst(), 'vres', 20);
  try {
    await caughtUp(m);
    const ctx = moveContext(m.ctx.config());
    const reg = await TaskRegistry.open(ctx.stateDir, ctx.log);
    const v = await startVerify(reg, ctx, { source: 'src', destination: 'dst' });
    await waitFor('some chunks done', () => (v.verify?.tables ?? []).some((t) => t.rowsChecked >= 200 && !t.cursor.done), 20000);
    v.controller.abort(); // the process dies: no STOP_TASK, status stays running
    await v.done;
    assert.equal(v.status, 'running');

    const reg2 = await TaskRegistry.open(ctx.stateDir, ctx.log);
    const again = reg2.get(v.id)!;
    const before = again.verify!.tables.map((t) => ({ table: t.table, rows: t.rowsChecked, done: t.cursor.done }));
    assert.ok(before.some((t) => t.rows > 0 && !t.done), `a table was cut off midway: ${JSON.stringify(before)}`);
    await resumeTasks(reg2, ctx);
    await again.done;
    const { state } = verifyOutcome(again);
    assert.equal(again.status, 'finished');
    // Two databases compared outside a task: the copy's destination sequences (all at 1) count too.
    assert.deepEqual(summarize(state), { tables: 5, rowsChecked: 2000 * 3 + 1500 + 3, differences: 0, sequences: 2, ok: false });
    for (const [table, n] of [['public.customers', 2000], ['public.events', 2000], ['public.orders', 2000], ['public.audit', 1500]] as const) {
      assert.equal(tableState(state, table).rowsChecked, n, `${table}: each chunk counted once across the restart`);
    }
  } finally {
    await stopTask(m.reg, m.ctx, m.task.id);
  }
});

test('STOP_TASK stops a running VERIFY: the VERIFY answer says stopped, SHOW TASKS showed its progress', async () => {
  const m = await startMove(clusters.src(), clusters.dst(), 'vstop', 10);
  try {
    await caughtUp(m);
    const ctx = moveContext(m.ctx.config());
    const answer = runMigrationCommand({ kind: 'verify', args: ['src', 'dst'] }, ctx);
    const reg = await ctx.tasks.registry();
    await waitFor('VERIFY progress', () => reg.list().some((t) => t.kind === 'verify' && /^verifying: \d+ of ~\d+ rows, \d+ rows\/s/.test(t.innerStatus)), 20000);
    const shown = await runMigrationCommand({ kind: 'show', what: 'tasks' }, ctx);
    assert.match(JSON.stringify(shown), /verify src -> dst/);
    const id = reg.list().find((t) => t.kind === 'verify')!.id;
    await runMigrationCommand({ kind: 'stop_task', taskId: id }, ctx);
    const res = JSON.stringify(await answer);
    assert.match(res, /"TOTAL",\d+,0,0,0,0,"[^"]*","stopped"/);
    assert.equal(reg.get(id)!.status, 'cancelled');
  } finally {
    await stopTask(m.reg, m.ctx, m.task.id);
  }
});

test('cutover_verify refuses CUTOVER on a difference before the gate closes; the move keeps streaming', async () => {
  const m = await startMove(clusters.src(), clusters.dst(), 'vcut', 400, (ctx) => ctx.tasks.registry());
  try {
    await caughtUp(m);
    const [{ id }] = await clusters.dst().query<{ id: string }>(`SELECT id::text FROM orders ORDER BY id LIMIT 1`, [], m.dests[1].db);
    await clusters.dst().query(`DELETE FROM orders WHERE id = ${id}`, [], m.dests[1].db);
    const config = m.ctx.config();
    config.general.cutover_verify = true;
    const gate = new PauseGate(5000);
    let closed = 0;
    const close = gate.close.bind(gate);
    gate.close = (...a: Parameters<PauseGate['close']>) => {
      closed++;
      close(...a);
    };
    const cctx: CutoverContext = { ...m.ctx, journal: CutoverJournalFile.open(m.ctx.stateDir), cutovers: new CutoverHistory(), traffic: { gate, currentConfig: config, applyConfig: () => assert.fail('no swap') }, swapped: () => assert.fail('no swap') };
    await assert.rejects(cutoverTask(cctx, m.task.id), (e: Error) => {
      assert.match(e.message, /CUTOVER refused by cutover_verify: VERIFY task \d+ verified 5 tables, \d+ rows: 1 row differences/);
      return true;
    });
    assert.equal(closed, 0, 'the gate never closed');
    assert.equal(m.task.innerStatus, 'replicating');
    assert.ok(!m.task.terminal);
  } finally {
    m.ctx.config().general.cutover_verify = false;
    await stopTask(m.reg, m.ctx, m.task.id);
  }
});
