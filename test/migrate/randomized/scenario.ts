// One seed, end to end through a real `pgshift serve` process: generated schema on a source
// database, seed rows, COPY_DATA (schema sync, copy, stream) to two destination shards while the
// workload writes through pgshift, optionally a kill -9 of pgshift mid-copy or mid-stream and a
// restart, CUTOVER, rollback (CUTOVER of the reverse task), CUTOVER again, then the checks.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgCluster, freePort } from '../../harness/pg-cluster.js';
import { PgshiftProcess, poll, sleep, type AdminRow } from '../crash-helpers.js';
import { moveConfigText, type Place } from '../move-helpers.js';
import { assertMoveCorrect, ledgerDifferences } from './compare.js';
import { describeSchema, generateSchema, schemaDdl, shardingToml, valueFor, type Schema } from './generator.js';
import { Ledger } from './ledger.js';
import { Rng } from './prng.js';
import { insertSql, Params } from './statements.js';
import { Workload, type Features, type WorkloadReport } from './workload.js';

export const WORKERS = 3;

export interface Plan {
  seed: number;
  schema: Schema;
  /** kill -9 of pgshift `delayMs` after the phase started, then a restart; or none. */
  kill: { phase: 'copy' | 'stream'; delayMs: number } | null;
  /** How long the workload runs between the steps of the move. */
  streamMs: number;
  settleMs: number;
}

export function planSeed(seed: number): { plan: Plan; rng: Rng } {
  const rng = new Rng(seed);
  const schema = generateSchema(seed, rng);
  const kill = rng.chance(0.5) ? { phase: rng.pick(['copy', 'stream'] as const), delayMs: rng.int(0, 600) } : null;
  return { plan: { seed, schema, kill, streamMs: rng.int(800, 2000), settleMs: rng.int(500, 1200) }, rng };
}

export function replayHint(p: Plan, features: Features): string {
  const off = Object.entries(features).filter(([, on]) => !on).map(([k]) => k);
  return `replay: PGSHIFT_SEED=${p.seed}${off.length ? ` PGSHIFT_RANDOM_OFF=${off.join(',')}` : ''} node scripts/test.mjs test/migrate/randomized\n` +
    `kill -9: ${p.kill ? `${p.kill.phase} +${p.kill.delayMs} ms` : 'none'}; stream ${p.streamMs} ms; features ${JSON.stringify(features)}\n${describeSchema(p.schema)}`;
}

/** Runs one seed; throws with the seed, the schema and pgshift's output when anything is wrong. */
export async function runSeed(seed: number, features: Features, note: (m: string) => void): Promise<WorkloadReport> {
  const { plan, rng } = planSeed(seed);
  const settings = { logical_decoding_work_mem: "'64kB'" }; // large transactions stream in progress
  const [a, b] = await Promise.all([PgCluster.start({ settings }), PgCluster.start({ settings })]);
  note('clusters started');
  const dir = mkdtempSync(join(tmpdir(), 'pgshift-random-'));
  let proc: PgshiftProcess | null = null;
  let workload: Workload | null = null;
  try {
    const source: Place = { pg: a, db: 'rnd_src' };
    const dests: Place[] = [{ pg: b, db: 'rnd_d0' }, { pg: b, db: 'rnd_d1' }];
    await a.createDatabase(source.db);
    for (const d of dests) await b.createDatabase(d.db);
    await a.query(schemaDdl(plan.schema), [], source.db);
    const ledger = new Ledger(plan.schema);
    await seedRows(source, plan.schema, ledger, rng);
    note('seeded');

    const port = await freePort();
    const { sharded, omni } = shardingToml(plan.schema, 'dst');
    const { toml, users } = moveConfigText([source], dests, sharded, omni);
    const general = `[general]\nhost = "127.0.0.1"\nport = ${port}\ndefault_pool_size = 10\ncutover_timeout = 30000\ncutover_grace_period = 15000\ncutover_traffic_stop_threshold = 100000000\n`;
    writeFileSync(join(dir, 'pgshift.toml'), toml.replace('[general]\n', general) + `\n[admin]\npassword = "adminpw"\n`);
    writeFileSync(join(dir, 'users.toml'), users);
    proc = new PgshiftProcess(join(dir, 'pgshift.toml'), join(dir, 'users.toml'), join(dir, 'state'), port);
    const p = proc;
    await p.start();
    note('pgshift started');

    const w = new Workload(plan.schema, ledger, features, { port, database: 'src', user: 'postgres', password: 'postgres' });
    workload = w;
    w.start(rng, WORKERS);
    await sleep(300);

    const explain = () => `pgshift output:\n${p.tail()}`;
    const task = async (id: number): Promise<AdminRow> => {
      const t = (await p.admin('SHOW TASKS')).find((r) => Number(r.id) === id);
      if (!t) throw new Error(`task ${id} is not listed`);
      if (t.status?.startsWith('failed')) assert.fail(`task ${id} failed: ${t.status}\n${explain()}`);
      return t;
    };
    const replicating = (id: number, what: string) => poll(what, async () => ((await task(id)).inner_status === 'replicating' ? true : undefined), 60_000, explain);
    const killAndRestart = async (phase: string) => {
      await sleep(plan.kill!.delayMs);
      const t = await task(1).catch(() => null);
      w.expectLoss = true;
      note(`kill -9 of pgshift during ${phase} (task: ${t?.inner_status ?? '?'})`);
      await p.kill9();
      await sleep(rng.int(100, 500));
      await p.start();
      await sleep(1000); // clients notice the restart and reconnect
      w.expectLoss = false;
    };

    w.phase = 'copy';
    const [started] = await p.admin('COPY_DATA src dst pub');
    const forward = Number(started.task_id);
    note(`COPY_DATA: task ${forward}`);
    if (plan.kill?.phase === 'copy') await killAndRestart('copy');
    await replicating(forward, 'the copy to finish and streaming to start');
    w.phase = 'stream';
    note('streaming');
    if (plan.kill?.phase === 'stream') {
      await killAndRestart('stream');
      await replicating(forward, 'streaming to resume after the restart');
    }
    await sleep(plan.streamMs);

    const cutover = async (id: number, phase: string): Promise<number> => {
      w.phase = phase;
      const [r] = await p.admin(`CUTOVER ${id}`);
      if (r?.cutover !== 'OK') throw new Error(`${phase}: CUTOVER ${id} answered ${JSON.stringify(r)}\n${explain()}`);
      note(`${phase}: pause ${r.pause_ms} ms, reverse task ${r.reverse_task_id}`);
      const reverse = Number(r.reverse_task_id);
      await replicating(reverse, `the reverse task ${reverse} after ${phase}`);
      w.phase = `after ${phase}`;
      await sleep(plan.settleMs);
      return reverse;
    };
    const back = await cutover(forward, 'cutover');
    const again = await cutover(back, 'rollback');
    const last = await cutover(again, 'cutover again');

    note('stopping the workload');
    const report = await w.stop();
    workload = null;
    note(`workload: ${JSON.stringify(report.ops)}, lost answers ${report.lost}`);
    await caughtUp(dests, explain);
    const [st] = await b.query<{ streamed: string; spilled: string }>(`SELECT coalesce(sum(stream_txns), 0)::text AS streamed, coalesce(sum(spill_txns), 0)::text AS spilled FROM pg_stat_replication_slots`);
    note(`reverse slots: ${st.streamed} transactions streamed in progress, ${st.spilled} spilled`);

    const problems = [...report.errors.map((e) => `client error: ${e}`), ...(await ledgerDifferences(dests, ledger))];
    // Both sides are compared even when the ledger already failed: the two together locate a loss.
    const sides = await assertMoveCorrect(source, dests, plan.schema).then(
      () => 'source and destination are equal',
      (err: Error) => err.message,
    );
    if (problems.length) throw new Error(`${problems.length} problems; first ones:\n  ${problems.slice(0, 15).join('\n  ')}\nboth sides: ${sides}`);
    if (sides !== 'source and destination are equal') throw new Error(sides);
    // pgshift's own VERIFY on the reverse task that now streams (serving cluster -> old source)
    // must agree: zero missing, extra, different and misplaced rows, no sequence risk.
    const verified = await p.admin(`VERIFY ${last}`);
    const total = verified.find((r) => r.table === 'TOTAL');
    const counts = (r: AdminRow) => [r.missing, r.extra, r.different, r.misplaced].map(Number);
    const differing = verified.filter((r) => r.table !== 'TOTAL' && (r.status !== 'ok' || counts(r).some((n) => n > 0)));
    if (!total || total.status !== 'ok' || differing.length > 0) {
      throw new Error(`VERIFY ${last} disagrees with the comparison of both sides:\n${verified.map((r) => JSON.stringify(r)).join('\n')}`);
    }
    note(`VERIFY ${last}: ${total.rows_checked} rows checked, no difference`);
    return report;
  } catch (err) {
    const e = err as Error;
    e.message = `randomized migration, ${replayHint(plan, features)}\n\n${e.message}\n\n${proc ? `pgshift output (tail):\n${proc.tail(Number(process.env.PGSHIFT_RANDOM_TAIL ?? 3000))}` : ''}`;
    throw e;
  } finally {
    await workload?.stop().catch(() => undefined);
    await proc?.kill9();
    await Promise.all([a.stop(), b.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Seed rows written directly on the source, recorded in the ledger, spread over the workers. */
async function seedRows(source: Place, schema: Schema, ledger: Ledger, rng: Rng): Promise<void> {
  const c = await source.pg.client(source.db);
  try {
    for (const t of schema.tables) {
      for (let done = 0; done < schema.seedRows; done += 100) {
        const n = Math.min(100, schema.seedRows - done);
        const rows = Array.from({ length: n }, (_, i) => {
          const v: Record<string, string | null | undefined> = {};
          for (const col of t.columns) {
            if (col.generated) continue;
            if (col.name === 'tag') v.tag = `seed_${done + i}`;
            else if (col.serverDefault) v[col.name] = undefined;
            else if (col.name === 'code') v.code = `p_seed_${done + i}`;
            else if (col.name === 'tenant') v.tenant = `tenant-${rng.int(1, 40)}`;
            else if (col.name === 'region') v.region = String(rng.int(1, 60));
            else v[col.name] = valueFor(rng, col, schema);
          }
          return v;
        });
        const p = new Params(false);
        const { sql, omitted } = insertSql(t, rows, p, false);
        const r = await c.query<Record<string, string>>(sql, p.values);
        for (const row of r.rows) {
          const v = rows.find((x) => x.tag === row.tag)!;
          for (const col of omitted) v[col.name] = row[col.name];
          const owner = t.truncatable ? 0 : (done + rows.indexOf(v)) % WORKERS;
          ledger.set(t.name, v.tag!, owner, v);
          for (const col of omitted) ledger.issue(t, col.name, row[col.name], 'seed');
        }
      }
    }
  } finally {
    await c.end();
  }
}

/** Waits until every slot on the destination (the reverse stream) has confirmed the current WAL. */
async function caughtUp(dests: Place[], explain: () => string): Promise<void> {
  const [{ lsn }] = await dests[0].pg.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`);
  await poll(
    'the reverse replication to catch up (every destination slot confirmed past the last write)',
    async () => {
      const r = await dests[0].pg.query<{ slot_name: string; behind: boolean }>(
        `SELECT slot_name, coalesce(confirmed_flush_lsn < $1::pg_lsn, true) AS behind FROM pg_replication_slots WHERE database = ANY($2)`,
        [lsn, dests.map((d) => d.db)],
      );
      return r.length === dests.length && r.every((x) => !x.behind) ? true : undefined;
    },
    30_000,
    explain,
  );
}
