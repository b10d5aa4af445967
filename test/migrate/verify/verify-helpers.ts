/**
 * A running 1 -> 2 move to verify: source "src" (one shard) copied and streaming to "dst" (two
 * shards) with the move helpers' schema plus `orders` (bigserial id, sharded by customer_id, a
 * TOAST value) and `audit` (no primary key, REPLICA IDENTITY FULL, sharded by customer_id).
 */
import { PgCluster } from '../../harness/pg-cluster.js';
import { TaskRegistry } from '../../../src/migrate/tasks/task-registry.js';
import { startCopyData, type TasksContext, type Task } from '../../../src/migrate/tasks/tasks.js';
import { verifyOutcome } from '../../../src/migrate/verify/verify-task.js';
import { startVerify, type VerifyRequest } from '../../../src/migrate/verify/verify-start.js';
import type { TableVerifyState, VerifyStateJson } from '../../../src/migrate/verify/report.js';
import { parseLsn } from '../../../src/wire/lsn.js';
import { before, after } from 'node:test';
import { moveConfig, moveContext, SCHEMA, SHARDED, seedSql, startLoop, waitFor, type Place } from '../move-helpers.js';

export const EXTRA_SHARDED = `${SHARDED}
[[sharded_tables]]
database = "dst"
name = "orders"
column = "customer_id"
data_type = "bigint"

[[sharded_tables]]
database = "dst"
name = "audit"
column = "customer_id"
data_type = "bigint"
`;

export const EXTRA_SCHEMA = `
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint, note text, big text);
CREATE TABLE audit (customer_id bigint, what text);
ALTER TABLE audit REPLICA IDENTITY FULL;
ALTER PUBLICATION pub ADD TABLE orders, audit;
INSERT INTO orders (customer_id, note, big)
SELECT g % 97, CASE WHEN g % 11 = 0 THEN NULL ELSE 'n' || g END, CASE WHEN g % 500 = 0 THEN repeat(md5(g::text), 400) END FROM generate_series(1, 2000) g;
INSERT INTO audit SELECT g % 50, 'a' || (g % 300) FROM generate_series(1, 1500) g;
`;

export interface Move {
  source: Place;
  dests: Place[];
  ctx: TasksContext;
  reg: TaskRegistry;
  task: Task;
}

/** Copies and starts streaming; resolves once the task replicates. */
export async function startMove(
  src: PgCluster,
  dst: PgCluster,
  prefix: string,
  chunkRows = 400,
  registry: (ctx: TasksContext) => Promise<TaskRegistry> = (ctx) => TaskRegistry.open(ctx.stateDir, ctx.log),
): Promise<Move> {
  const source: Place = { pg: src, db: `${prefix}_src` };
  const dests: Place[] = [{ pg: dst, db: `${prefix}_d0` }, { pg: dst, db: `${prefix}_d1` }];
  await src.createDatabase(source.db);
  for (const d of dests) await dst.createDatabase(d.db);
  await src.query(SCHEMA + seedSql(2000) + EXTRA_SCHEMA, [], source.db);
  const config = moveConfig([source], dests, EXTRA_SHARDED);
  config.general.verify_chunk_rows = chunkRows;
  const ctx = moveContext(config);
  const reg = await registry(ctx);
  const task = await startCopyData(reg, ctx, { source: 'src', destination: 'dst', publication: 'pub' });
  await waitFor('replicating', () => task.innerStatus === 'replicating' && task.streams.length === 1, 60000);
  return { source, dests, ctx, reg, task };
}

/** Waits until the stream has applied everything the source has written so far. */
export async function caughtUp(m: Move): Promise<void> {
  const [{ lsn }] = await m.source.pg.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`, [], m.source.db);
  // The task reports "replicating" a moment before its stream has started.
  const until = parseLsn(lsn);
  await waitFor('caught up', () =>
    m.task.streams[0].waitForLsn(until, 30000).then(
      () => true,
      (e: Error) => {
        if (/is starting/.test(e.message)) return false;
        throw e;
      },
    ),
  );
}

/** Runs VERIFY to its end. */
export async function verify(m: Move, req: VerifyRequest = { taskId: m.task.id }): Promise<{ state: VerifyStateJson; ok: boolean; task: Task }> {
  const t = await startVerify(m.reg, m.ctx, req);
  await t.done;
  return { ...verifyOutcome(t), task: t };
}

export function tableState(s: VerifyStateJson, table: string): TableVerifyState {
  const t = s.tables.find((x) => x.table === table);
  if (!t) throw new Error(`no VERIFY result for ${table}: ${s.tables.map((x) => x.table).join(', ')}`);
  return t;
}

/** A writer on the source: orders inserted and updated (not their shard key), audit rows added. */
export function startOrdersWriter(p: Place): { stop(): Promise<number> } {
  return startLoop(p, async (c, n) => {
    await c.query(`INSERT INTO orders (customer_id, note) VALUES ($1, 'w')`, [n % 97]);
    await c.query(`UPDATE orders SET note = note || '+' WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)`);
    await c.query(`BEGIN; INSERT INTO audit VALUES (${n % 50}, 'w'); DELETE FROM orders WHERE id = (SELECT min(id) FROM orders); COMMIT`);
  });
}

/** A source and a destination cluster for the file's tests, started before and stopped after them. */
export function useClusters(): { src(): PgCluster; dst(): PgCluster } {
  let src: PgCluster;
  let dst: PgCluster;
  before(async () => {
    [src, dst] = await Promise.all([PgCluster.start(), PgCluster.start()]);
  });
  after(async () => {
    await Promise.all([src?.stop(), dst?.stop()]);
  });
  return { src: () => src, dst: () => dst };
}
