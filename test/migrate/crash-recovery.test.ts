// Crash recovery of a COPY_DATA task, end to end with pgshift as a separate process
// (`pgshift serve`): it is killed with SIGKILL once in the middle of the copy (two tables
// already committed on the destination, the big one sent but uncommitted) and once while
// streaming (a two-shard source transaction committed on one destination shard only, the slot
// not yet confirmed past it), and started again on the same state directory each time, while a
// writer keeps inserting, updating (shard-key changes included) and deleting on the source.
// After catch-up the destination shards together hold exactly the source's rows: none lost,
// none doubled, none stale, each on the shard its key hashes to.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { PgCluster, freePort } from '../harness/pg-cluster.js';
import { shardOfValue } from '../../src/sharding/index.js';
import { moveConfigText, SCHEMA, slotNames, type Place } from './move-helpers.js';
import { PgshiftProcess, CommitGate, originProgress, lsnAfter, uuidOnShard, crashSeedSql, startMixedWriter, poll, sleep, compareSharded, assertSame, assertFullCopies, slotPosition, type AdminRow, type WriterCounts } from './crash-helpers.js';

/** Seeded customers (and a tenth as many events): megabytes in flight when the copy is killed. */
const ROWS = Number(process.env.CRASH_ROWS ?? 150_000);

let src: PgCluster;
let dst: PgCluster;
let proc: PgshiftProcess | null = null;
let writer: { stop(): Promise<WriterCounts> } | null = null;
let dir = '';
let blocker: pg.Client | null = null;
let gate: CommitGate | null = null;

before(async () => {
  [src, dst] = await Promise.all([PgCluster.start(), PgCluster.start()]);
});
after(async () => {
  // Always: a leftover pgshift would keep streaming from the source after the test.
  await proc?.kill9();
  await blocker?.end().catch(() => undefined);
  await gate?.close();
  await writer?.stop().catch(() => undefined);
  await Promise.all([src?.stop(), dst?.stop()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const tasks = async (p: PgshiftProcess): Promise<AdminRow> => {
  const rows = await p.admin('SHOW TASKS');
  const t = rows.find((r) => r.id === '1');
  assert.ok(t, `task 1 is listed by SHOW TASKS: ${JSON.stringify(rows)}`);
  return t;
};

/**
 * End of the WAL inserted so far: at or past the end of every commit that has returned. The
 * test clusters run with synchronous_commit = off, so pg_current_wal_lsn() (the write position)
 * can still be before commits that have returned (by several transactions on a loaded machine).
 */
const currentLsn = async (p: Place): Promise<string> => (await p.pg.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`, [], p.db))[0].lsn;

test('kill -9 of pgshift mid-copy and again mid-stream, under a running writer: after restarts the destination equals the source with no row lost or doubled, and STOP_TASK drops the slot', async (t) => {
  const t0 = Date.now();
  const note = (m: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)}s ${m}`);
  const source: Place = { pg: src, db: 'crash_src' };
  const dests: Place[] = [{ pg: dst, db: 'crash_d0' }, { pg: dst, db: 'crash_d1' }];
  await src.createDatabase(source.db);
  for (const d of dests) await dst.createDatabase(d.db);
  await src.query(SCHEMA + crashSeedSql(ROWS), [], source.db);
  note('seeded');
  await src.query(`ANALYZE`, [], source.db);

  dir = mkdtempSync(join(tmpdir(), 'pgshift-crash-'));
  const { toml, users } = moveConfigText([source], dests);
  const port = await freePort();
  writeFileSync(join(dir, 'pgshift.toml'), toml.replace('[general]\n', `[general]\nhost = "127.0.0.1"\nport = ${port}\n`) + `\n[admin]\npassword = "adminpw"\n`);
  writeFileSync(join(dir, 'users.toml'), users);
  proc = new PgshiftProcess(join(dir, 'pgshift.toml'), join(dir, 'users.toml'), join(dir, 'state'), port);
  const p = proc;
  const explain = () => `pgshift output:\n${p.tail()}`;
  await p.start();

  const w = startMixedWriter(source, ROWS);
  writer = w;
  await sleep(200);
  const [started] = await p.admin('COPY_DATA src dst pub');
  assert.equal(started.task_id, '1');
  const slot = started.replication_slot!;
  assert.equal(slot, 'pgshift_1');

  // ---- crash 1: in the middle of the copy --------------------------------------------------
  // To land the kill mid-copy whatever the machine's load, the copy of customers is held up on
  // one destination shard: an open transaction there inserts the last seeded id, so the copy's
  // own insert of that id waits on it (unique check). Rows before it have been forwarded, the
  // smaller tables finish and commit, and customers stays uncommitted until the kill.
  await poll('the copy of customers to start', async () => ((await p.admin('SHOW TABLE_COPIES')).some((r) => r.table === 'customers' && r.status === 'running') ? true : undefined), 30000, explain);
  const held = String(ROWS);
  const heldShard = shardOfValue('bigint', held, dests.length);
  blocker = await dests[heldShard].pg.client(dests[heldShard].db);
  await blocker.query(`BEGIN`);
  await blocker.query(`SET LOCAL lock_timeout = '10s'`);
  await blocker.query(`INSERT INTO customers (id, name) VALUES ($1, 'blocker')`, [held]).catch((err: Error) => {
    assert.fail(`could not hold the copy at id ${held} (it got there first; raise CRASH_ROWS): ${err.message}`);
  });
  const heldBy = async () => {
    const [r] = await dests[heldShard].pg.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pgshift copy' AND wait_event = 'transactionid'`,
      [dests[heldShard].db],
    );
    return Number(r.n);
  };
  const copies = await poll(
    'customers held mid-copy (its copy waiting on the held id) while the other tables are committed',
    async () => {
      const rows = await p.admin('SHOW TABLE_COPIES');
      const others = rows.filter((r) => r.table !== 'customers');
      const big = rows.find((r) => r.table === 'customers');
      const ready = big?.status === 'running' && Number(big.rows) > 0 && others.length > 0 && others.every((r) => r.status === 'finished');
      return ready && (await heldBy()) === 1 ? rows : undefined;
    },
    30000,
    explain,
  );
  const finished = copies.filter((r) => r.status === 'finished').map((r) => r.table!);
  note(`kill -9 mid-copy: ${copies.map((r) => `${r.table} ${r.status} ${r.rows}`).join(', ')}`);
  await p.kill9();
  // The copy's destination backend wakes up, finds its client gone and rolls back.
  await blocker.query('ROLLBACK');
  await blocker.end();
  blocker = null;
  // What the dead copy left behind: whole tables committed on the destination. Copying them
  // again without emptying the destination first would double every row.
  let leftover = 0;
  for (const d of dests) for (const t of finished) leftover += Number((await d.pg.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`, [], d.db))[0].n);
  assert.ok(leftover > 0, `tables ${finished.join(', ')} were committed on the destination before the crash`);
  const saved = JSON.parse(readFileSync(join(dir, 'state', 'tasks.json'), 'utf8')) as { tasks: { id: number; phase: string }[] };
  assert.equal(saved.tasks.find((t) => t.id === 1)?.phase, 'copying', 'the state file says the task died copying');

  await p.start();
  const resumed = await tasks(p);
  assert.ok(!resumed.status!.startsWith('failed') && resumed.status !== 'cancelled', `task 1 resumed after the restart: ${JSON.stringify(resumed)}`);
  await poll(
    'the restarted copy to finish and streaming to start',
    async () => {
      const t = await tasks(p);
      if (t.status!.startsWith('failed')) assert.fail(`task failed after the first restart: ${t.status}\n${explain()}`);
      return t.inner_status === 'replicating' ? t : undefined;
    },
    60000,
    explain,
  );
  note('copy restarted and finished; replicating');
  for (const c of await p.admin('SHOW TABLE_COPIES')) assert.equal(c.status, 'finished', `${c.table} copied after the restart`);

  // ---- crash 2: while streaming, the writer still writing ------------------------------------
  // The kill lands where exactly-once is hardest: a source transaction touching both shards has
  // committed on one of them, its commit on the other is held (CommitGate), and the slot is not
  // confirmed past it. The restarted stream receives it again and must skip it on the first
  // shard (or the row doubles / the insert fails) and apply it on the second.
  const mark1 = await currentLsn(source);
  await poll('the stream to apply changes made after the copy', async () => ((await slotPosition(source, slot, mark1)).reached ? true : undefined), 30000, explain);
  const [gated, ahead] = [1, 0];
  gate = await CommitGate.install(dests[gated]);
  const sc = await src.client(source.db);
  let gateLsn: string;
  try {
    await sc.query(`BEGIN`);
    await sc.query(`INSERT INTO events (id, customer_id, payload) VALUES ($1, -1, '{"gate": true}'), ($2, -1, '{"gate": false}')`, [uuidOnShard(gated, dests.length), uuidOnShard(ahead, dests.length)]);
    await sc.query(`COMMIT`);
    gateLsn = await currentLsn(source); // >= that commit's end
  } finally {
    await sc.end();
  }
  const g = gate;
  const split = await poll(
    `shard ${ahead} to commit the two-shard transaction while shard ${gated} waits at the gate`,
    async () => {
      if ((await g.waiting()).length === 0) return undefined;
      const progress = await originProgress(dests[ahead], `${slot}_${ahead}`);
      const confirmed = (await slotPosition(source, slot, gateLsn)).lsn;
      if (confirmed && !lsnAfter(gateLsn, confirmed)) assert.fail(`slot confirmed up to ${confirmed}, past a transaction shard ${gated} has not committed (before ${gateLsn}): a crash now loses it`);
      return progress && confirmed && lsnAfter(progress, confirmed) ? { progress, confirmed } : undefined;
    },
    30000,
    explain,
  );
  const copiedOnce = await p.admin('SHOW TABLE_COPIES');
  note(`kill -9 mid-stream: shard ${ahead} applied up to ${split.progress}, slot confirmed ${split.confirmed}, shard ${gated} held; writer ${JSON.stringify(w.counts)}`);
  await p.kill9();
  await gate.abortAndRemove();
  gate = null;
  const saved2 = JSON.parse(readFileSync(join(dir, 'state', 'tasks.json'), 'utf8')) as { tasks: { id: number; phase: string }[] };
  assert.equal(saved2.tasks.find((t) => t.id === 1)?.phase, 'replicating', 'the state file says the task died streaming');

  await p.start();
  const again = await tasks(p);
  assert.ok(again.status === 'running' || again.status === 'started', `task 1 resumed after the second restart: ${JSON.stringify(again)}`);
  // Resumed from the slot, not by copying again: the table copies are the same as before.
  assert.deepEqual(await p.admin('SHOW TABLE_COPIES'), copiedOnce);
  const mark2 = await currentLsn(source);
  await poll(
    'the resumed stream to confirm past the restart point',
    async () => {
      const t = await tasks(p);
      if (t.status!.startsWith('failed')) assert.fail(`task failed after the second restart: ${t.status}\n${explain()}`);
      return (await slotPosition(source, slot, mark2)).reached ? true : undefined;
    },
    30000,
    explain,
  );
  note('stream resumed from the slot');
  await sleep(500);

  // ---- catch up and compare -----------------------------------------------------------------
  const counts = await w.stop();
  writer = null;
  assert.ok(counts.inserts > 100 && counts.deletes > 10 && counts.keyMoves > 10 && counts.transactions > 10, `the writer ran throughout: ${JSON.stringify(counts)}`);
  const end = await currentLsn(source);
  await poll('the slot to confirm everything the writer wrote (lag 0)', async () => ((await slotPosition(source, slot, end)).reached ? true : undefined), 30000, explain);
  note(`caught up at ${end}; writer ${JSON.stringify(counts)}`);
  const [row] = (await p.admin('SHOW REPLICATION_SLOTS')).filter((r) => r.name === slot);
  assert.ok(row && row.state === 'active' && row.lsn, `SHOW REPLICATION_SLOTS shows the active slot: ${JSON.stringify(row)}`);

  assertSame('customers', await compareSharded(source, dests, 'customers', 'id', 'bigint'));
  assertSame('events', await compareSharded(source, dests, 'events', 'id', 'uuid'));
  await assertFullCopies(source, dests, 'countries', 'code');

  const [stopped] = await p.admin('STOP_TASK 1');
  assert.equal(stopped.stop_task, 'OK');
  assert.equal((await tasks(p)).status, 'cancelled');
  assert.deepEqual(await slotNames(source), [], 'STOP_TASK dropped the slot');
  const origins = await dst.query<{ roname: string }>(`SELECT roname FROM pg_replication_origin WHERE roname LIKE $1`, [`${slot}_%`]);
  assert.deepEqual(origins, [], 'STOP_TASK dropped the replication origins on the destination');
});
