import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { ReplicationStream } from '../../src/migrate/replicate/stream.js';
import type { ApplyHooks } from '../../src/migrate/replicate/applier.js';
import { shardProgress, shardOriginName } from '../../src/migrate/replicate/origin.js';
import { silentLogger } from '../../src/observe/log.js';
import type { PgError } from '../../src/wire/pg-error.js';
import { assertPlacement, assertSameRows, currentWalLsn, topology, until, type Topology } from './stream-helpers.js';

// One cluster holds the source database and both destination shards: replication origins are
// cluster-wide, so this also proves each shard's origin is independent of the other's.
let pgc: PgCluster;
let c: pg.Client;
let topo: Topology;
const DST = ['d0', 'd1'];

// `log` has no primary key (REPLICA IDENTITY FULL): a transaction applied twice would leave
// visible duplicates instead of failing on a unique index.
const SCHEMA = `
  CREATE TABLE log (account_id bigint, seq int, payload text);
  ALTER TABLE log REPLICA IDENTITY FULL;
  CREATE TABLE items (id bigint PRIMARY KEY, v text);`;

const SHARDED = `
[[sharded_tables]]
database = "dst"
name = "log"
column = "account_id"

[[sharded_tables]]
database = "dst"
name = "items"
column = "id"
`;

before(async () => {
  pgc = await PgCluster.start();
  await pgc.createDatabase('app');
  for (const d of DST) {
    await pgc.createDatabase(d);
    await pgc.query(SCHEMA, [], d);
  }
  await pgc.query(SCHEMA + ' CREATE PUBLICATION pub FOR TABLE log, items;', [], 'app');
  c = await pgc.client('app');
  topo = topology(pgc, 'app', pgc, DST, SHARDED, []);
});

after(async () => {
  await c?.end();
  await pgc?.stop();
});

function stream(slot: string, hooks?: ApplyHooks): ReplicationStream {
  return new ReplicationStream({
    source: topo.source,
    destination: topo.destination,
    destDatabase: 'dst',
    config: topo.config,
    slot,
    publication: 'pub',
    log: silentLogger(),
    originName: slot,
    statusIntervalMs: 100,
    hooks,
  });
}

async function assertInSync(): Promise<void> {
  await assertSameRows(pgc, 'app', pgc, DST, 'log');
  await assertSameRows(pgc, 'app', pgc, DST, 'items');
  await assertPlacement(pgc, DST, 'log', 'account_id', 'bigint');
  await assertPlacement(pgc, DST, 'items', 'id', 'bigint');
}

async function count(db: string, sql: string): Promise<number> {
  return (await pgc.query<{ n: number }>(`SELECT (${sql})::int AS n`, [], db))[0].n;
}

/** Resolves with the stream's failure. */
function failure(s: ReplicationStream): Promise<PgError> {
  return new Promise((resolve) => (s.onError = resolve));
}

test('a crash after shard 0 committed and before shard 1 did: the restarted stream applies the transaction on shard 1 only, nothing lost or doubled', async () => {
  await pgc.query(`SELECT pg_create_logical_replication_slot('eo1', 'pgoutput')`, [], 'app');
  let armed = false;
  const s1 = stream('eo1', {
    beforeCommit: (shard) => {
      if (armed && shard === 1) {
        armed = false;
        throw new Error('simulated crash between the shards\' commits');
      }
    },
  });
  await s1.start();
  await c.query(`INSERT INTO log SELECT g % 10, g, 'base' FROM generate_series(1, 100) g`);
  await c.query(`INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 50) g`);
  await s1.waitForLsn(await currentWalLsn(pgc, 'app'), 20_000);
  await assertInSync();

  const failed = failure(s1);
  armed = true;
  await c.query(`BEGIN;
    INSERT INTO log SELECT g % 10, g, 'crash txn' FROM generate_series(1000, 1100) g;
    INSERT INTO items SELECT g, 'crash txn' FROM generate_series(100, 140) g;
    UPDATE items SET v = 'updated in crash txn' WHERE id <= 20;
    UPDATE items SET id = id + 500 WHERE id BETWEEN 21 AND 30;
    DELETE FROM items WHERE id BETWEEN 31 AND 35;
    COMMIT`);
  const err = await failed;
  assert.match(err.message, /simulated crash/);

  // The window was really hit: shard 0 has the transaction, shard 1 does not.
  assert.ok((await count('d0', `SELECT count(*) FROM log WHERE payload = 'crash txn'`)) > 0);
  assert.equal(await count('d1', `SELECT count(*) FROM log WHERE payload = 'crash txn'`), 0);
  const [p0, p1] = await shardProgress(topo.destination, 'eo1');
  assert.ok(p0 !== null && p1 !== null && p0 > p1, `shard 0 progress (${p0}) must be ahead of shard 1 (${p1})`);

  // More writes while pgshift is down.
  await c.query(`INSERT INTO log SELECT g % 10, g, 'while down' FROM generate_series(2000, 2050) g`);
  await c.query(`DELETE FROM log WHERE seq BETWEEN 1 AND 10`);

  const s2 = stream('eo1');
  await s2.start();
  try {
    await s2.waitForLsn(await currentWalLsn(pgc, 'app'), 20_000);
    await assertInSync();
    assert.ok((await count('d1', `SELECT count(*) FROM log WHERE payload = 'crash txn'`)) > 0, 'shard 1 received its part of the replayed transaction');
  } finally {
    await s2.stop();
  }
});

test('repeated abrupt crashes at different commit points under a concurrent writer: the destination ends equal to the source', async () => {
  await pgc.query(`SELECT pg_create_logical_replication_slot('eo2', 'pgoutput')`, [], 'app');
  await c.query('TRUNCATE log, items');
  // Crash plans: [shard whose commit is refused, how many commits to let through first].
  const plans: [number, number][] = [
    [0, 3],
    [1, 5],
    [0, 0],
    [1, 2],
  ];
  let stop = false;
  const writer = (async () => {
    const w = await pgc.client('app');
    try {
      for (let i = 0; !stop; i++) {
        await w.query(`BEGIN;
          INSERT INTO log VALUES (${i % 13}, ${i}, 'w'), (${(i * 7) % 13}, ${i}, 'w2');
          INSERT INTO items VALUES (${i}, 'w${i}') ON CONFLICT (id) DO UPDATE SET v = excluded.v || '!';
          UPDATE items SET id = id + 100000 WHERE id = ${i - 3};
          DELETE FROM log WHERE seq = ${i - 5} AND payload = 'w2';
          COMMIT`);
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      await w.end();
    }
  })();

  let crashes = 0;
  try {
    for (const [shard, after] of plans) {
      let commits = 0;
      const s = stream('eo2', {
        beforeCommit: (sh) => {
          if (sh !== shard) return;
          if (commits++ >= after) throw new Error(`simulated crash before shard ${shard} commit #${commits}`);
        },
      });
      const failed = failure(s);
      await s.start();
      await failed;
      crashes++;
    }
  } finally {
    stop = true;
    await writer;
  }
  assert.equal(crashes, plans.length);
  const s = stream('eo2');
  await s.start();
  try {
    await s.waitForLsn(await currentWalLsn(pgc, 'app'), 20_000);
    await assertInSync();
    assert.ok((await count('app', 'SELECT count(*) FROM log')) > 20, 'the writer must have produced a real workload');
    await until('lag 0', async () => (await s.lagBytes()) === 0);
  } finally {
    await s.stop();
  }
  // Each shard has its own origin on the shared cluster.
  const origins = await pgc.query<{ roname: string }>(`SELECT roname FROM pg_replication_origin WHERE roname LIKE 'eo2%' ORDER BY 1`, [], 'app');
  assert.deepEqual(origins.map((o) => o.roname), [shardOriginName('eo2', 0), shardOriginName('eo2', 1)]);
});
