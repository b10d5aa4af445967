// Tasks: a copy cut off midway restarts cleanly after a registry restart (no row doubled),
// task state survives the restart, and the admin commands start, show and stop tasks; STOP_TASK
// drops the replication slot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { TaskRegistry } from '../../src/migrate/tasks/task-registry.js';
import { startCopyData, resumeTasks, stopTask } from '../../src/migrate/tasks/tasks.js';
import { runMigrationCommand } from '../../src/admin/migration-commands.js';
import { moveConfig, moveContext, SCHEMA, seedSql, destFingerprint, fingerprint, slotNames, waitFor, type Place } from './move-helpers.js';

let pg: PgCluster;
before(async () => {
  pg = await PgCluster.start();
});
after(async () => {
  await pg?.stop();
});

async function setup(prefix: string, rows: number): Promise<{ source: Place; dests: Place[] }> {
  const source: Place = { pg, db: `${prefix}_src` };
  const dests: Place[] = [{ pg, db: `${prefix}_d0` }, { pg, db: `${prefix}_d1` }];
  for (const p of [source, ...dests]) await pg.createDatabase(p.db);
  await pg.query(
    `${SCHEMA}${seedSql(rows)}
     CREATE TABLE logs (n int, msg text);
     ALTER TABLE logs REPLICA IDENTITY FULL;
     INSERT INTO logs SELECT g, 'line ' || g FROM generate_series(1, ${rows * 40}) g;
     ALTER PUBLICATION pub ADD TABLE logs;`,
    [],
    source.db,
  );
  return { source, dests };
}

const ALL = ['countries', 'customers', 'events', 'logs'];

test('a copy cut off midway restarts after a registry restart: state persisted, old slot replaced, no row doubled', async () => {
  const { source, dests } = await setup('rs', 10000);
  const ctx = moveContext(moveConfig([source], dests));
  const regA = await TaskRegistry.open(ctx.stateDir, ctx.log);
  const task = await startCopyData(regA, ctx, { source: 'src', destination: 'dst', publication: 'pub', options: { syncOnly: true, chunkBlocks: 16 } });
  assert.equal(task.type, 'copy_data src -> dst');
  assert.deepEqual(task.slots, [`pgshift_${task.id}`]);
  // Cut the copy off once rows are flowing (as a crash would: nothing is cleaned up).
  for (const end = Date.now() + 20000; ![...task.tables.values()].some((t) => t.rows > 0); ) {
    assert.ok(Date.now() < end, 'copy never started');
    await new Promise((r) => setImmediate(r));
  }
  task.controller.abort();
  await task.done;
  let copied = 0;
  let total = 0;
  for (const t of ALL) {
    copied += (await destFingerprint(dests, t)).n;
    total += (await fingerprint(source, t)).n;
  }
  assert.ok(copied < total, `the copy was cut off midway (${copied} of ${total} rows copied)`);
  assert.deepEqual(await slotNames(source), [`pgshift_${task.id}`], 'the crashed copy left its slot behind');

  // "Restart": a new registry over the same state directory.
  const regB = await TaskRegistry.open(ctx.stateDir, ctx.log);
  const again = regB.get(task.id)!;
  assert.ok(again, 'the task survived the restart');
  assert.equal(again.type, 'copy_data src -> dst');
  assert.equal(again.status, 'running');
  assert.equal(again.innerStatus, 'syncing data');
  assert.equal(again.phase, 'copying');
  assert.deepEqual(again.slots, task.slots);
  assert.deepEqual(again.options, { syncOnly: true, chunkBlocks: 16 });
  await resumeTasks(regB, ctx);
  await again.done;
  assert.equal(again.status, 'finished', `task ended ${again.status}`);
  for (const t of ['customers', 'events']) assert.deepEqual(await destFingerprint(dests, t), await fingerprint(source, t), `${t}: each row exactly once`);
  // countries (omnisharded) and logs (no sharding config): a full copy on every shard, once.
  for (const t of ['countries', 'logs']) {
    for (const d of dests) assert.deepEqual(await fingerprint(d, t), await fingerprint(source, t), `${t} on ${d.db}: each row exactly once`);
  }
  for (const t of again.tables.values()) assert.equal(t.status, 'finished');
  // --sync-only keeps the slot (reported in the inner status) until STOP_TASK drops it.
  assert.equal(again.slotsKept, true);
  assert.match(again.innerStatus, new RegExp(`slot pgshift_${task.id} kept`));
  assert.deepEqual(await slotNames(source), [`pgshift_${task.id}`]);
  assert.equal(await stopTask(regB, ctx, task.id), true);
  assert.deepEqual(await slotNames(source), []);
  assert.equal(await stopTask(regB, ctx, task.id), false, 'nothing left to stop');
  const regC = await TaskRegistry.open(ctx.stateDir, ctx.log);
  assert.equal(regC.get(task.id)?.slotsKept, false, 'the dropped slot is persisted');
});

test('admin COPY_DATA runs in the background to replicating; SHOW TASKS / TABLE_COPIES / REPLICATION_SLOTS; STOP_TASK drops the slot', async () => {
  const { source, dests } = await setup('ad', 300);
  const ctx = moveContext(moveConfig([source], dests));
  const res = await runMigrationCommand({ kind: 'copy_data', source: 'src', destination: 'dst', publication: 'pub', slot: 'admin_slot' }, ctx);
  assert.deepEqual(res.columns?.map((c) => c.name), ['task_id', 'replication_slot']);
  const id = Number(res.rows![0][0]);
  assert.equal(res.rows![0][1], 'admin_slot');

  const show = async (what: 'tasks' | 'table_copies' | 'replication_slots') => {
    const r = await runMigrationCommand({ kind: 'show', what }, ctx);
    const cols = r.columns!.map((c) => c.name);
    return { cols, rows: r.rows!.map((row) => Object.fromEntries(cols.map((c, i) => [c, row[i]]))) };
  };
  await waitFor('replicating', async () => (await show('tasks')).rows.some((r) => r.inner_status === 'replicating'), 30000);
  const tasks = await show('tasks');
  assert.deepEqual(tasks.cols, ['id', 'scope', 'type', 'status', 'inner_status', 'started_at', 'updated_at', 'elapsed', 'elapsed_ms', 'cutover_phase']);
  const row = tasks.rows.find((r) => r.id === id)!;
  assert.equal(row.scope, 'root');
  assert.equal(row.type, 'copy_data src -> dst');
  assert.equal(row.status, 'running');
  assert.match(String(row.started_at), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$/);
  assert.match(String(row.elapsed), /^\d\d:\d\d:\d\d:\d{3}$/);

  const copies = await show('table_copies');
  const customers = copies.rows.find((r) => r.task_id === id && r.table === 'customers')!;
  assert.equal(customers.status, 'finished');
  assert.equal(customers.rows, 300);
  assert.ok(Number(customers.bytes) > 0);
  assert.equal(copies.rows.filter((r) => r.task_id === id).length, 4);

  // Streaming is on: a new source row reaches its destination shard.
  await pg.query(`INSERT INTO countries VALUES ('it', 'Italy')`, [], source.db);
  await waitFor('the insert to be replicated', async () => (await fingerprint(dests[1], 'countries')).n === 4, 20000).catch(async (e) => {
    const st = ctx.tasks.get(id)?.streams[0];
    const d0 = (await fingerprint(dests[0], 'countries')).n;
    const slotRow = await pg.query(`SELECT * FROM pg_replication_slots`);
    const origins = await pg.query(`SELECT * FROM pg_replication_origin_status`);
    throw new Error(`${(e as Error).message}; tasks: ${JSON.stringify((await show('tasks')).rows)} stats ${JSON.stringify(st?.stats)} applied ${st?.appliedLsn} d0 ${d0} slots ${JSON.stringify(slotRow)} origins ${JSON.stringify(origins)}`);
  });

  const slots = await show('replication_slots');
  const slot = slots.rows.find((r) => r.task_id === id)!;
  assert.equal(slot.name, 'admin_slot');
  assert.equal(slot.shard, 0);
  assert.equal(slot.database_name, source.db);
  assert.match(String(slot.lsn), /^[0-9A-F]+\/[0-9A-F]+$/);
  assert.equal(typeof slot.lag_bytes, 'number');
  assert.equal(slot.state, 'active');

  const stop = await runMigrationCommand({ kind: 'stop_task', taskId: id }, ctx);
  assert.deepEqual(stop.rows, [['OK']]);
  assert.deepEqual(await slotNames(source), [], 'STOP_TASK dropped the slot');
  const origins = await pg.query(`SELECT roname FROM pg_replication_origin WHERE roname LIKE 'admin_slot%'`);
  assert.deepEqual(origins, [], 'STOP_TASK dropped the destination replication origins');
  const after = (await show('tasks')).rows.find((r) => r.id === id)!;
  assert.equal(after.status, 'cancelled');
  const again = await runMigrationCommand({ kind: 'stop_task', taskId: id }, ctx);
  assert.deepEqual(again.rows, [['task not found']]);
  const none = await runMigrationCommand({ kind: 'stop_task', taskId: 999 }, ctx);
  assert.deepEqual(none.rows, [['task not found']]);
});

test('admin SCHEMA_SYNC runs as a task that finishes; a refused COPY_DATA returns the pre-flight error', async () => {
  const source: Place = { pg, db: 'sc_src' };
  const dests: Place[] = [{ pg, db: 'sc_d0' }, { pg, db: 'sc_d1' }];
  for (const p of [source, ...dests]) await pg.createDatabase(p.db);
  await pg.query(SCHEMA, [], source.db);
  const ctx = moveContext(moveConfig([source], dests));
  const res = await runMigrationCommand({ kind: 'schema_sync', phase: 'pre', source: 'src', destination: 'dst', publication: 'pub' }, ctx);
  const id = Number(res.rows![0][0]);
  await waitFor('schema sync to finish', async () => {
    const r = await runMigrationCommand({ kind: 'show', what: 'tasks' }, ctx);
    return r.rows!.some((row) => row[0] === id && row[3] === 'finished');
  });
  const r = await runMigrationCommand({ kind: 'show', what: 'tasks' }, ctx);
  assert.equal(r.rows!.find((row) => row[0] === id)![2], 'schema_sync(pre) src -> dst');
  for (const d of dests) assert.equal((await fingerprint(d, 'customers')).n, 0, `${d.db} has the table (empty)`);
  await assert.rejects(
    runMigrationCommand({ kind: 'copy_data', source: 'src', destination: 'dst', publication: 'missing' }, ctx),
    /pre-flight check failed: publication "missing" does not exist/,
  );
  await assert.rejects(runMigrationCommand({ kind: 'copy_data', source: 'nope', destination: 'dst', publication: 'pub' }, ctx), /database "nope" is not configured/);
});
