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
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgCluster, freePort } from '../harness/pg-cluster.js';
import type { Place } from './move-helpers.js';
import { PgshiftProcess, poll, sleep, type AdminRow } from './crash-helpers.js';
import { LEDGER_SCHEMA, LedgerApp, checkLedger, ledgerProblems, sameRows } from './ledger-helpers.js';

const ALL = ['reverse_intended', 'reverse_created', 'barrier', 'sequences', 'switched', 'resumed', 'reverse_task', 'forward_finished', 'done'] as const;
type Step = (typeof ALL)[number];
// Roll-forward is covered by default too: 'switched' (then 'reverse_task' during recovery) in the
// crash-during-recovery test, 'barrier' by the RESHARD test, a finished cutover by the SIGTERM test.
const DEFAULT: Step[] = ['reverse_created'];
const STEPS: readonly Step[] = process.env.PGSHIFT_FAULTS_ALL ? ALL : DEFAULT;
const SWITCHED: Step[] = ['switched', 'resumed', 'reverse_task', 'forward_finished', 'done'];

let src: PgCluster;
let dst: PgCluster;
const running: PgshiftProcess[] = [];
const apps: LedgerApp[] = [];
const dirs: string[] = [];

before(async () => {
  [src, dst] = await Promise.all([PgCluster.start(), PgCluster.start()]);
});
after(async () => {
  for (const p of running) await p.kill9();
  for (const a of apps) await a.stop().catch(() => undefined);
  await Promise.all([src?.stop(), dst?.stop()]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Move {
  p: PgshiftProcess;
  source: Place[];
  dest: Place[];
  app: LedgerApp;
  explain: () => string;
}

let n = 0;

/** A 1-shard source and a 2-shard destination, pgshift running, COPY_DATA replicating, the application writing. */
async function setUp(general = 'cutover_timeout = 20000\n'): Promise<Move> {
  const i = ++n;
  const source: Place[] = [{ pg: src, db: `lsrc_${i}` }];
  const dest: Place[] = [{ pg: dst, db: `ldst_${i}_0` }, { pg: dst, db: `ldst_${i}_1` }];
  await src.createDatabase(source[0].db);
  for (const d of dest) await dst.createDatabase(d.db);
  await src.query(LEDGER_SCHEMA, [], source[0].db);
  const dir = mkdtempSync(join(tmpdir(), 'pgshift-cutcrash-'));
  dirs.push(dir);
  const port = await freePort();
  const db = (name: string, p: Place, shard: number) => `[[databases]]\nname = "${name}"\nhost = "127.0.0.1"\nport = ${p.pg.port}\ndatabase_name = "${p.db}"\nshard = ${shard}\n`;
  writeFileSync(
    join(dir, 'pgshift.toml'),
    [
      `[general]\nhost = "127.0.0.1"\nport = ${port}\n${general}cutover_traffic_stop_threshold = 100000000\n`,
      `[admin]\npassword = "adminpw"\n`,
      db('app', source[0], 0),
      ...dest.map((d, s) => db('app_new', d, s)),
      `[[sharded_tables]]\ndatabase = "app_new"\nname = "ledger"\ncolumn = "tenant"\ndata_type = "bigint"\n`,
    ].join('\n'),
  );
  writeFileSync(join(dir, 'users.toml'), ['app', 'app_new'].map((d) => `[[users]]\nname = "app"\ndatabase = "${d}"\npassword = "pw"\nserver_user = "postgres"\nserver_password = "postgres"\n`).join('\n'));
  const p = new PgshiftProcess(join(dir, 'pgshift.toml'), join(dir, 'users.toml'), join(dir, 'state'), port);
  running.push(p);
  const explain = () => `pgshift output:\n${p.tail()}`;
  return { p, source, dest, app: null as unknown as LedgerApp, explain };
}

async function startMove(m: Move, env: Record<string, string> = {}): Promise<void> {
  await m.p.start(20000, env);
  const [started] = await m.p.admin('COPY_DATA app app_new pub');
  assert.equal(started.task_id, '1');
  await waitTask(m, '1', (t) => t.inner_status === 'replicating');
  m.app = new LedgerApp(`postgresql://app:pw@127.0.0.1:${m.p.port}/app?sslmode=disable`);
  apps.push(m.app);
  await poll('the application to have written', async () => (m.app.acked.size >= 30 ? true : undefined), 20000, m.explain);
}

async function waitTask(m: Move, id: string, ok: (t: AdminRow) => boolean, timeoutMs = 30000): Promise<AdminRow> {
  return poll(
    `task ${id} to reach the expected state`,
    async () => {
      const t = (await m.p.admin('SHOW TASKS')).find((r) => r.id === id);
      if (t?.status?.startsWith('failed')) assert.fail(`task ${id} failed: ${t.status}\n${m.explain()}`);
      return t && ok(t) ? t : undefined;
    },
    timeoutMs,
    m.explain,
  );
}

async function slotsOn(places: Place[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of places) for (const r of await p.pg.query<{ slot_name: string }>(`SELECT slot_name FROM pg_replication_slots WHERE database = $1`, [p.db])) out.push(r.slot_name);
  return out.sort();
}

/** The slots on both clusters are exactly those live tasks own (SHOW REPLICATION_SLOTS), and SHOW ORPHANS lists no slot. */
async function assertNoOrphanSlots(m: Move): Promise<void> {
  const owned = (await m.p.admin('SHOW REPLICATION_SLOTS')).map((r) => r.name!).sort();
  assert.deepEqual(await slotsOn([...m.source, ...m.dest]), owned, `slots on the clusters = slots live tasks own\n${m.explain()}`);
  const orphans = (await m.p.admin('SHOW ORPHANS')).filter((r) => r.kind === 'slot');
  assert.deepEqual(orphans, [], 'SHOW ORPHANS lists no slot');
}

/** Stops the writer, then: the ledger is on `served`, and `other` catches up to exactly the same rows. */
async function assertLedger(m: Move, served: Place[], other: Place[], what: string): Promise<void> {
  await m.app.stop();
  const c = await checkLedger(m.app, served);
  assert.equal(ledgerProblems(c), '', `${what}: the served cluster holds every acknowledged write (${c.acked} acknowledged)\n${m.explain()}`);
  await poll(`${what}: the other cluster to hold the same rows`, async () => ((await sameRows(served, other)) === '' ? true : undefined), 20000, () => m.explain());
}

/** Through pgshift: the serving cluster is the one named (by counting rows on both sides after one tagged insert). */
async function servedBy(m: Move): Promise<'source' | 'destination'> {
  const rows = await m.p.admin('SHOW ROUTING');
  const app = rows.find((r) => r.database === 'app');
  assert.ok(app, 'SHOW ROUTING lists app');
  return app.serving!.includes(m.dest[0].db) ? 'destination' : 'source';
}

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
  m.app = new LedgerApp(`postgresql://app:pw@127.0.0.1:${m.p.port}/app?sslmode=disable`);
  apps.push(m.app);
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
  const appliers = async () => {
    const pids: number[] = [];
    for (const d of m.dest) for (const r of await d.pg.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pgshift-apply'`, [d.db])) pids.push(r.pid);
    return pids;
  };
  const frozen = await appliers();
  assert.ok(frozen.length > 0, 'the apply connections were found');
  for (const pid of frozen) process.kill(pid, 'SIGSTOP');
  let answer: string;
  try {
    const t0 = Date.now();
    answer = await m.p.admin('CUTOVER 1').then(
      () => 'completed',
      (e: Error) => e.message,
    );
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
