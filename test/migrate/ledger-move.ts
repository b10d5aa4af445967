// A move as an operator lives it, for the fault tests: `pgshift serve` as a child process (killed
// and restarted on the same config files and state directory), a 1-shard source and a 2-shard
// destination on two real PostgreSQL servers (which the tests may stop and start), COPY_DATA
// app -> app_new, and an application writing through pgshift with a ledger of every
// acknowledged write; plus the checks every fault test ends with.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgCluster, freePort } from '../harness/pg-cluster.js';
import type { Place } from './move-helpers.js';
import { PgshiftProcess, poll, type AdminRow } from './crash-helpers.js';
import { LEDGER_SCHEMA, LedgerApp, checkLedger, ledgerProblems, sameRows } from './ledger-helpers.js';

export interface Move {
  p: PgshiftProcess;
  src: PgCluster;
  dst: PgCluster;
  source: Place[];
  dest: Place[];
  app: LedgerApp;
  dir: string;
  /** Every application started for the file's tests: the cleanup stops them. */
  apps: LedgerApp[];
  explain: () => string;
}

/** Two PostgreSQL servers for the file's tests (started before them), and the cleanup after them. */
export function ledgerMoves(): { setUp(general?: string): Promise<Move> } {
  let src: PgCluster;
  let dst: PgCluster;
  const running: PgshiftProcess[] = [];
  const apps: LedgerApp[] = [];
  const dirs: string[] = [];
  let n = 0;
  before(async () => {
    [src, dst] = await Promise.all([PgCluster.start(), PgCluster.start()]);
  });
  after(async () => {
    for (const p of running) await p.kill9();
    for (const a of apps) await a.stop().catch(() => undefined);
    await Promise.all([src?.stop(), dst?.stop()]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return {
    async setUp(general = 'cutover_timeout = 20000\n') {
      const i = ++n;
      const source: Place[] = [{ pg: src, db: `lsrc_${i}` }];
      const dest: Place[] = [{ pg: dst, db: `ldst_${i}_0` }, { pg: dst, db: `ldst_${i}_1` }];
      await src.createDatabase(source[0].db);
      for (const d of dest) await dst.createDatabase(d.db);
      // The test servers commit asynchronously (fast); a production database does not, and an
      // immediate shutdown would otherwise lose commits PostgreSQL itself acknowledged.
      for (const p of [...source, ...dest]) await p.pg.query(`ALTER DATABASE ${p.db} SET synchronous_commit = on`);
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
      return { p, src, dst, source, dest, app: null as unknown as LedgerApp, dir, apps, explain };
    },
  };
}

/** The application writing through pgshift, its ledger kept (stopped with the file's cleanup). */
export function startApp(m: Move): LedgerApp {
  m.app = new LedgerApp(`postgresql://app:pw@127.0.0.1:${m.p.port}/app?sslmode=disable`);
  m.apps.push(m.app);
  return m.app;
}

/** pgshift started, COPY_DATA replicating, the application writing (at least 30 acknowledged writes). */
export async function startMove(m: Move, env: Record<string, string> = {}): Promise<void> {
  await m.p.start(20000, env);
  const [started] = await m.p.admin('COPY_DATA app app_new pub');
  assert.equal(started.task_id, '1');
  await waitTask(m, '1', (t) => t.inner_status === 'replicating');
  startApp(m);
  await poll('the application to have written', async () => (m.app.acked.size >= 30 ? true : undefined), 20000, m.explain);
}

/** SHOW TASKS until task `id` satisfies `ok`; a failed task fails the test at once. */
/** Runs CUTOVER on task `id`: 'completed', or the error message it was refused or aborted with. */
export function cutoverOutcome(m: Move, id = '1'): Promise<string> {
  return m.p.admin(`CUTOVER ${id}`).then(
    () => 'completed',
    (e: Error) => e.message,
  );
}

export async function waitTask(m: Move, id: string, ok: (t: AdminRow) => boolean, timeoutMs = 30000): Promise<AdminRow> {
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

export async function slotsOn(places: Place[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of places) for (const r of await p.pg.query<{ slot_name: string }>(`SELECT slot_name FROM pg_replication_slots WHERE database = $1`, [p.db])) out.push(r.slot_name);
  return out.sort();
}

/** The slots on both clusters are exactly those live tasks own (SHOW REPLICATION_SLOTS), and SHOW ORPHANS lists no slot. */
export async function assertNoOrphanSlots(m: Move): Promise<void> {
  const owned = (await m.p.admin('SHOW REPLICATION_SLOTS')).map((r) => r.name!).sort();
  assert.deepEqual(await slotsOn([...m.source, ...m.dest]), owned, `slots on the clusters = slots live tasks own\n${m.explain()}`);
  const orphans = (await m.p.admin('SHOW ORPHANS')).filter((r) => r.kind === 'slot');
  assert.deepEqual(orphans, [], 'SHOW ORPHANS lists no slot');
}

/** Stops the writer, then: the ledger is on `served`, and `other` catches up to exactly the same rows. */
export async function assertLedger(m: Move, served: Place[], other: Place[], what: string): Promise<void> {
  await m.app.stop();
  const c = await checkLedger(m.app, served);
  assert.equal(ledgerProblems(c), '', `${what}: the served cluster holds every acknowledged write (${c.acked} acknowledged)\n${m.explain()}`);
  await poll(`${what}: the other cluster to hold the same rows`, async () => ((await sameRows(served, other)) === '' ? true : undefined), 20000, () => m.explain());
}

/** The cluster pgshift serves for `app`, from SHOW ROUTING. */
export async function servedBy(m: Move): Promise<'source' | 'destination'> {
  const rows = await m.p.admin('SHOW ROUTING');
  const app = rows.find((r) => r.database === 'app');
  assert.ok(app, 'SHOW ROUTING lists app');
  return app.serving!.includes(m.dest[0].db) ? 'destination' : 'source';
}

/** Waits until the application has `n` more acknowledged writes than now. */
export async function moreWrites(m: Move, n: number): Promise<void> {
  const before = m.app.acked.size;
  await poll(`${n} more acknowledged writes`, async () => (m.app.acked.size >= before + n ? true : undefined), 30000, () => `${m.app.ops} operations, ${m.app.errors} errors, now ${m.app.doing}\n${m.explain()}`);
}
