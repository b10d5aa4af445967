// End to end: COPY_DATA from a source cluster to a 2-shard destination cluster while a writer
// inserts and updates the whole time (before, during and after the copy); once the writer stops
// and the streams catch up, every destination table equals the source (row count and checksum),
// every row sits on the shard PostgreSQL's hash partitioning gives its key, and STOP_TASK
// drops the slot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { TaskRegistry } from '../../src/migrate/tasks/task-registry.js';
import { startCopyData, stopTask } from '../../src/migrate/tasks/tasks.js';
import { parseLsn } from '../../src/wire/lsn.js';
import {
  moveConfig, moveContext, SCHEMA, seedSql, startWriter, destFingerprint, fingerprint, assertPlacedByPostgres, slotNames, waitFor, type Place,
} from './move-helpers.js';

let src: PgCluster;
let dst: PgCluster;
before(async () => {
  [src, dst] = await Promise.all([PgCluster.start(), PgCluster.start()]);
});
after(async () => {
  await Promise.all([src?.stop(), dst?.stop()]);
});

test('COPY_DATA 1 -> 2 under a running writer catches up: destination == source, rows on their shards, STOP_TASK drops the slot', async () => {
  const source: Place = { pg: src, db: 'e2e_src' };
  const dests: Place[] = [{ pg: dst, db: 'e2e_d0' }, { pg: dst, db: 'e2e_d1' }];
  await src.createDatabase(source.db);
  for (const d of dests) await dst.createDatabase(d.db);
  await src.query(SCHEMA + seedSql(3000), [], source.db);
  const ctx = moveContext(moveConfig([source], dests));
  const reg = await TaskRegistry.open(ctx.stateDir, ctx.log);

  const writer = startWriter(source);
  await new Promise((r) => setTimeout(r, 200));
  const task = await startCopyData(reg, ctx, { source: 'src', destination: 'dst', publication: 'pub', options: { chunkBlocks: 8 } });
  await waitFor('replicating', () => task.innerStatus === 'replicating' && task.streams.length === 1, 60000);
  await new Promise((r) => setTimeout(r, 500)); // the writer keeps going while streaming
  const written = await writer.stop();
  assert.ok(written > 10, `the writer ran throughout (${written} rounds)`);

  const [{ lsn }] = await src.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`, [], source.db); // past every (asynchronous) commit
  await task.streams[0].waitForLsn(parseLsn(lsn), 30000);
  assert.ok(!task.terminal, `task still running (${task.status})`);

  for (const t of ['customers', 'events']) {
    const got = await destFingerprint(dests, t);
    const want = await fingerprint(source, t);
    if (got.h !== want.h || got.n !== want.n) assert.fail(`${t}: destination shards != source after catch-up: ${await diff(source, dests, t)}`);
  }
  for (const d of dests) assert.deepEqual(await fingerprint(d, 'countries'), await fingerprint(source, 'countries'), `countries on ${d.db}`);
  await assertPlacedByPostgres(dests, 'customers', 'id', 'bigint');
  await assertPlacedByPostgres(dests, 'events', 'id', 'uuid');
  // Post-copy schema is there: the FK to the omnisharded table and the secondary index.
  for (const d of dests) {
    const [{ n }] = await d.pg.query<{ n: string }>(`SELECT count(*) AS n FROM pg_constraint WHERE contype = 'f' AND conrelid = 'customers'::regclass`, [], d.db);
    assert.equal(Number(n), 1, `foreign key on ${d.db}`);
  }

  assert.equal(await stopTask(reg, ctx, task.id), true);
  assert.equal(task.status, 'cancelled');
  assert.deepEqual(await slotNames(source), []);
});

/** The rows that differ, by primary key, for a failure message that explains itself. */
async function diff(source: Place, dests: Place[], table: string): Promise<string> {
  const rows = async (p: Place) => new Map((await p.pg.query<{ id: string; r: string }>(`SELECT id::text AS id, t::text AS r FROM ${table} t`, [], p.db)).map((x) => [x.id, x.r]));
  const want = await rows(source);
  const got = new Map<string, string>();
  for (const d of dests) for (const [k, v] of await rows(d)) got.set(k, v);
  const out: string[] = [];
  for (const [k, v] of want) if (got.get(k) !== v) out.push(`id ${k}: source ${v} / destination ${got.get(k) ?? 'missing'}`);
  for (const k of got.keys()) if (!want.has(k)) out.push(`id ${k}: only on the destination`);
  return `${out.length} rows differ; ${out.slice(0, 5).join(' | ')}`;
}
