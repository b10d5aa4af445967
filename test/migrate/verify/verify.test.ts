// VERIFY on a live 1 -> 2 move: zero differences on a correct move, also while writers keep
// writing to the source (the consistent point makes that exact), and each kind of planted
// difference reported with the right key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stopTask } from '../../../src/migrate/tasks/tasks.js';
import { shardOfValue } from '../../../src/sharding/index.js';
import { startWriter } from '../move-helpers.js';
import { startMove, caughtUp, verify, tableState, startOrdersWriter, type Move, useClusters } from './verify-helpers.js';

const clusters = useClusters();

function assertClean(state: Awaited<ReturnType<typeof verify>>['state'], when: string): void {
  for (const t of state.tables) {
    assert.deepEqual(t.counts, { missing: 0, extra: 0, different: 0, misplaced: 0 }, `${when}: ${t.table} ${JSON.stringify(t.samples)}`);
    assert.equal(t.status, 'ok', `${when}: ${t.table}`);
  }
}

test('VERIFY reports zero differences on a correct move, and exactly zero while writers keep writing to the source during streaming', async () => {
  const m = await startMove(clusters.src(), clusters.dst(), 'vok');
  try {
    await caughtUp(m);
    const quiet = await verify(m);
    assert.equal(quiet.ok, true, JSON.stringify(quiet.state));
    assert.match(quiet.state.point, /^synchronized at source LSN /);
    // Before the cutover the destination's sequences are all at 1: reported, not a difference.
    assert.deepEqual(quiet.state.sequences.map((q) => q.split(':')[0]), ['public.customers_id_seq', 'public.orders_id_seq']);
    assert.equal(quiet.state.sequencesLive, false);
    assert.deepEqual(quiet.state.tables.map((t) => t.table).sort(), ['public.audit', 'public.countries', 'public.customers', 'public.events', 'public.orders']);
    assert.equal(tableState(quiet.state, 'public.customers').rowsChecked, 2000);
    assert.equal(tableState(quiet.state, 'public.audit').rowsChecked, 1500);

    const w1 = startWriter(m.source);
    const w2 = startOrdersWriter(m.source);
    const w3 = startOrdersWriter(m.source);
    try {
      await new Promise((r) => setTimeout(r, 300));
      for (let round = 0; round < 5; round++) {
        const busy = await verify(m);
        assertClean(busy.state, `round ${round} under writes`);
        assert.equal(busy.ok, true);
        assert.ok(tableState(busy.state, 'public.customers').rowsChecked > 2000, 'the writer added customers before the point');
      }
    } finally {
      assert.ok((await w1.stop()) > 5);
      assert.ok((await w2.stop()) > 5);
      assert.ok((await w3.stop()) > 5);
    }
    assert.ok(!m.task.terminal, `the move still streams after VERIFY (${m.task.status})`);
  } finally {
    await stopTask(m.reg, m.ctx, m.task.id);
  }
});

async function oneRow(p: Move['dests'][number], sql: string): Promise<Record<string, unknown>> {
  const [r] = await p.pg.query(sql, [], p.db);
  return r;
}

test('VERIFY names a misplaced row, a changed value, a missing row and an extra row by key', async () => {
  const m = await startMove(clusters.src(), clusters.dst(), 'vbad');
  try {
    await caughtUp(m);
    const [d0, d1] = m.dests;
    // Misplaced: an order moved from the shard its customer_id picks to the other one.
    const mis = await oneRow(d0, `SELECT id::text AS id FROM orders ORDER BY id LIMIT 1`);
    await d0.pg.query(`WITH gone AS (DELETE FROM orders WHERE id = ${mis.id} RETURNING *) SELECT 1`, [], d0.db);
    const moved = await m.source.pg.query(`SELECT id, customer_id, note, big FROM orders WHERE id = ${mis.id}`, [], m.source.db);
    await d1.pg.query(`INSERT INTO orders (id, customer_id, note, big) VALUES ($1, $2, $3, $4)`, [moved[0].id, moved[0].customer_id, moved[0].note, moved[0].big], d1.db);
    // Different: a value changed on the destination.
    const changed = await oneRow(d1, `SELECT id::text AS id FROM customers ORDER BY id DESC LIMIT 1`);
    await d1.pg.query(`UPDATE customers SET balance = balance + 0.0001 WHERE id = ${changed.id}`, [], d1.db);
    // Missing: an event deleted on the destination.
    const missing = await oneRow(d0, `SELECT id::text AS id FROM events ORDER BY id LIMIT 1`);
    await d0.pg.query(`DELETE FROM events WHERE id = '${missing.id}'`, [], d0.db);
    // Extra: a customer only the destination has, on the shard its id picks.
    const extraId = '987654321';
    const shard = shardOfValue('bigint', extraId, 2);
    await m.dests[shard].pg.query(`INSERT INTO customers (id, name) VALUES (${extraId}, 'ghost')`, [], m.dests[shard].db);
    // No key: one audit row duplicated on the destination.
    const [a] = await d0.pg.query<{ customer_id: string; what: string }>(`SELECT customer_id::text, what FROM audit LIMIT 1`, [], d0.db);
    await d0.pg.query(`INSERT INTO audit VALUES ($1, $2)`, [a.customer_id, a.what], d0.db);

    const { state, ok } = await verify(m);
    assert.equal(ok, false);
    const orders = tableState(state, 'public.orders');
    assert.deepEqual(orders.counts, { missing: 0, extra: 0, different: 0, misplaced: 1 });
    assert.deepEqual(orders.samples.misplaced, [`(${mis.id}) @shard 1`]);
    const customers = tableState(state, 'public.customers');
    assert.deepEqual(customers.counts, { missing: 0, extra: 1, different: 1, misplaced: 0 });
    assert.deepEqual(customers.samples.different, [`(${changed.id})`]);
    assert.deepEqual(customers.samples.extra, [`(${extraId})`]);
    const events = tableState(state, 'public.events');
    assert.deepEqual(events.counts, { missing: 1, extra: 0, different: 0, misplaced: 0 });
    assert.deepEqual(events.samples.missing, [`(${missing.id})`]);
    const audit = tableState(state, 'public.audit');
    assert.deepEqual(audit.counts, { missing: 0, extra: 1, different: 0, misplaced: 0 });
    assert.deepEqual(audit.samples.extra, [`(${a.customer_id},${a.what})`]);
    assert.equal(tableState(state, 'public.countries').status, 'ok');
    assert.equal(customers.status, 'differs');
  } finally {
    await stopTask(m.reg, m.ctx, m.task.id);
  }
});
