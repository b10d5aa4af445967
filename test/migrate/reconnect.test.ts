// A replication stream survives PostgreSQL failures: when pgshift's walsender on the source or
// its apply connections on the destination are terminated, or the destination restarts, the task
// reconnects and restarts from its slot (SHOW TASKS says so) instead of failing, and once the
// writer stops the destination equals the source — every row once, on its shard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { TaskRegistry } from '../../src/migrate/tasks/task-registry.js';
import { startCopyData, stopTask } from '../../src/migrate/tasks/tasks.js';
import type { Task } from '../../src/migrate/tasks/task-registry.js';
import { moveConfig, moveContext, SCHEMA, seedSql, waitFor, type Place } from './move-helpers.js';
import { assertFullCopies, assertSame, compareSharded, sleep, startMixedWriter } from './crash-helpers.js';
import { currentWalLsn } from './stream-helpers.js';
import { isConnectionLoss, reconnectDelay } from '../../src/migrate/replicate/reconnect.js';
import { PgError } from '../../src/wire/pg-error.js';

let srcPg: PgCluster;
let dstPg: PgCluster;
before(async () => {
  [srcPg, dstPg] = await Promise.all([PgCluster.start(), PgCluster.start()]);
});
after(async () => {
  await Promise.all([srcPg?.stop(), dstPg?.stop()]);
});

const SEEDED = 500;

/**
 * A COPY_DATA task streaming src → two destination shards, a mixed writer on the source, then
 * `fault`; the task must reconnect (never terminal) and end with the destination equal to the source.
 */
async function survives(prefix: string, fault: Fault): Promise<string[]> {
  const source: Place = { pg: srcPg, db: `${prefix}_src` };
  const dests: Place[] = [{ pg: dstPg, db: `${prefix}_d0` }, { pg: dstPg, db: `${prefix}_d1` }];
  await srcPg.createDatabase(source.db);
  for (const d of dests) await dstPg.createDatabase(d.db);
  await srcPg.query(SCHEMA + seedSql(SEEDED), [], source.db);
  const config = moveConfig([source], dests);
  config.general.resharding_replication_retry_min_delay = 200;
  const ctx = moveContext(config);
  const reg = await TaskRegistry.open(ctx.stateDir, ctx.log);
  const task = await startCopyData(reg, ctx, { source: 'src', destination: 'dst', publication: 'pub', options: {} });
  try {
    await waitFor('the task to replicate', () => task.innerStatus === 'replicating' && task.streams.length === 1 && task.streams[0].streaming, 30_000);
    const seen = await faultWhileWriting(task, source, fault);
    assert.equal(task.status, 'running');
    assertSame('customers', await compareSharded(source, dests, 'customers', 'id', 'bigint'));
    assertSame('events', await compareSharded(source, dests, 'events', 'id', 'uuid'));
    await assertFullCopies(source, dests, 'countries', 'code');
    return seen;
  } finally {
    // Slots are cluster-wide: the next test's task reuses the name.
    assert.equal(await stopTask(reg, ctx, task.id), true);
  }
}

/** The fault may pause the writer (a source going down cuts its connection too). */
type Fault = (writer: { pause(): Promise<void>; resume(): void }) => Promise<void>;

/** Writer on, fault, reconnect, writer off, caught up; returns every inner status the task showed (it must never end). */
async function faultWhileWriting(task: Task, source: Place, fault: Fault): Promise<string[]> {
  const seen: string[] = [];
  let watching = true;
  let ended: string | null = null;
  const watcher = (async () => {
    while (watching) {
      if (seen[seen.length - 1] !== task.innerStatus) seen.push(task.innerStatus);
      if (task.terminal) ended ??= task.status;
      await sleep(10);
    }
  })();
  let writer = startMixedWriter(source, SEEDED);
  let written = 0;
  const pauseWriter = async () => {
    written += (await writer.stop()).inserts;
  };
  try {
    await sleep(700);
    await fault({ pause: pauseWriter, resume: () => (writer = startMixedWriter(source, SEEDED)) });
    await waitFor('the task to reconnect', () => {
      assert.ok(!task.terminal, `the task ended: ${task.status}`);
      return seen.some((s) => s.startsWith('replicating (reconnecting')) && task.innerStatus === 'replicating' && task.streams[0].streaming;
    }, 30_000);
    await sleep(700); // the writer goes on after the reconnect
  } finally {
    await pauseWriter();
    assert.ok(written > 0, 'the writer wrote');
    watching = false;
    await watcher;
  }
  assert.equal(ended, null, `the task ended: ${ended}`);
  await caughtUp(task, source);
  return seen;
}

async function caughtUp(task: Task, source: Place): Promise<void> {
  const target = await currentWalLsn(source.pg, source.db);
  await waitFor('the stream to apply everything written', () => {
    assert.ok(!task.terminal, `the task ended: ${task.status}`);
    return task.streams[0].appliedLsn >= target;
  }, 30_000);
}

async function terminate(pg: PgCluster, applicationName: string): Promise<number> {
  const r = await pg.query<{ n: number }>(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1`, [applicationName]);
  return r[0].n;
}

test('pg_terminate_backend of the walsender on the source during streaming: the task reconnects from the slot and the destination ends equal to the source', async () => {
  const seen = await survives('ws', async () => {
    assert.equal(await terminate(srcPg, 'pgshift-replication'), 1, 'one walsender terminated');
  });
  assert.ok(seen.some((s) => /^replicating \(reconnecting, attempt 1\/10: .+\)$/.test(s)), `SHOW TASKS showed the reconnect with its cause (saw ${JSON.stringify(seen)})`);
});

test('pg_terminate_backend of the apply connections on the destination during streaming: the task reconnects and the destination ends equal to the source', async () => {
  const seen = await survives('ap', async () => {
    assert.equal(await terminate(dstPg, 'pgshift-apply'), 2, 'both shards\' apply connections terminated');
  });
  assert.ok(seen.some((s) => /^replicating \(reconnecting, attempt 1\/10: /.test(s)), `SHOW TASKS showed the reconnect (saw ${JSON.stringify(seen)})`);
});

test('an immediate restart of the source PostgreSQL during streaming: the task retries until it is back, replays from the slot and the destination ends equal to the source', async () => {
  const seen = await survives('sr', async (writer) => {
    await writer.pause();
    await srcPg.stopServer('immediate');
    await sleep(1500);
    await srcPg.startServer();
    writer.resume();
  });
  assert.ok(seen.some((s) => /^replicating \(reconnecting, attempt [2-9]\/10: /.test(s)), `several attempts while the source was down (saw ${JSON.stringify(seen)})`);
});

test('an immediate restart of the destination PostgreSQL during streaming: the task retries until it is back and the destination ends equal to the source', async () => {
  const seen = await survives('rs', async () => {
    await dstPg.stopServer('immediate');
    await sleep(1500); // down long enough for reconnect attempts to fail
    await dstPg.startServer();
  });
  assert.ok(seen.some((s) => /^replicating \(reconnecting, attempt [2-9]\/10: /.test(s)), `several attempts while the destination was down (saw ${JSON.stringify(seen)})`);
});

test('only a lost connection is retried (08xxx, 57P01-57P05, 53300; not 23505, 42P01, 42704, 55006), with delays doubling from the minimum up to 30 s', () => {
  for (const code of ['08006', '08000', '08P01', '57P01', '57P02', '57P03', '57P05', '53300']) assert.ok(isConnectionLoss(new PgError(code, 'x')), code);
  for (const code of ['23505', '23503', '42P01', '42704', '55006', '57014', 'XX000']) assert.ok(!isConnectionLoss(new PgError(code, 'x')), code);
  const policy = { maxAttempts: 10, minDelayMs: 1000 };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 10].map((a) => reconnectDelay(policy, a)), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
});
