import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import { PgCluster } from '../harness/pg-cluster.js';
import { ReplicationStream } from '../../src/migrate/replicate/stream.js';
import { silentLogger } from '../../src/observe/log.js';
import { formatLsn } from '../../src/wire/lsn.js';
import { protoVersionFor } from '../../src/migrate/replicate/replication-client.js';
import { assertPlacement, assertSameRows, currentWalLsn, topology, until, type Topology } from './stream-helpers.js';

// Source and destination are separate clusters; the destination's two shards are two databases.
let src: PgCluster;
let dst: PgCluster;
let c: pg.Client;
let topo: Topology;
const DST = ['shard0', 'shard1'];

const SCHEMA = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE TABLE items (id bigint PRIMARY KEY, i int, n numeric, t text, b bytea, j jsonb, ts timestamptz,
                      arr int[], tarr text[], m mood, u uuid, flag bool, big text);
  ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
  CREATE TABLE people (name varchar(64) PRIMARY KEY, age int, big text);
  ALTER TABLE people ALTER COLUMN big SET STORAGE EXTERNAL;
  CREATE TABLE events (account_id bigint, payload text);
  ALTER TABLE events REPLICA IDENTITY FULL;
  CREATE TABLE settings (k text PRIMARY KEY, v jsonb);`;

const SHARDED = `
[[sharded_tables]]
database = "dst"
name = "items"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "dst"
name = "people"
column = "name"
data_type = "varchar"

[[sharded_tables]]
database = "dst"
name = "events"
column = "account_id"
data_type = "bigint"
`;

/** 6 kB of incompressible-ish text, stored out of line (STORAGE EXTERNAL): a TOASTed value. */
const BIG = `(SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 190) g)`;

before(async () => {
  [src, dst] = await Promise.all([PgCluster.start({ settings: { logical_decoding_work_mem: "'64kB'" } }), PgCluster.start()]);
  await src.createDatabase('app');
  for (const d of DST) {
    await dst.createDatabase(d);
    await dst.query(SCHEMA, [], d);
  }
  await src.query(SCHEMA + ` CREATE PUBLICATION pub FOR TABLE items, people, events, settings;`, [], 'app');
  c = await src.client('app');
  topo = topology(src, 'app', dst, DST, SHARDED, ['settings']);
});

after(async () => {
  await c?.end();
  await src?.stop();
  await dst?.stop();
});

function stream(slot: string): ReplicationStream {
  return new ReplicationStream({
    source: topo.source,
    destination: topo.destination,
    destDatabase: 'dst',
    config: topo.config,
    slot,
    publication: 'pub',
    log: silentLogger(),
    originName: `pgshift_${slot}`,
    statusIntervalMs: 200,
  });
}

async function assertAll(): Promise<void> {
  for (const t of ['items', 'people', 'events']) await assertSameRows(src, 'app', dst, DST, t);
  await assertPlacement(dst, DST, 'items', 'id', 'bigint');
  await assertPlacement(dst, DST, 'people', 'name', 'varchar');
  await assertPlacement(dst, DST, 'events', 'account_id', 'bigint');
  // Omnisharded: every shard holds the whole table.
  for (const d of DST) assert.deepEqual(await dst.query(`SELECT * FROM settings ORDER BY k`, [], d), await src.query(`SELECT * FROM settings ORDER BY k`, [], 'app'));
}

test('streaming applies inserts, updates (shard-key moves, unchanged TOAST), deletes, TRUNCATE and streamed large transactions to the right shards, exactly', async () => {
  await c.query(`SELECT pg_create_logical_replication_slot('s1', 'pgoutput')`);
  const s = stream('s1');
  const errors: Error[] = [];
  s.onError = (e) => errors.push(e);
  await s.start();
  try {
    const major = Number((await src.query<{ server_version_num: string }>('SHOW server_version_num'))[0].server_version_num) / 10000;
    assert.equal(s.protoVersion, protoVersionFor(Math.floor(major)));
    // Many types, odd values, NULLs.
    await c.query(`INSERT INTO items SELECT g, g * 7, (g::numeric / 7)::numeric(30,20), 'text ' || g || E' \\t "q" ''s''',
        decode(md5(g::text) || '00ff', 'hex'), jsonb_build_object('g', g, 'nested', jsonb_build_array(1, 'x', null, 2.5)),
        timestamptz '2024-02-29 23:59:59.123456+00' + g * interval '1 second 7 microseconds',
        ARRAY[g, NULL, -g], ARRAY['a,b', NULL, '{x}', 'q"uote'], (ARRAY['sad','ok','happy'])[1 + g % 3]::mood,
        md5(g::text)::uuid, g % 2 = 0, CASE WHEN g % 4 = 0 THEN ${BIG} END
      FROM generate_series(1, 200) g`);
    await c.query(`INSERT INTO items (id, n, j, ts) VALUES (1000001, 'NaN', '{"a": {"b": [1e100, -0.0000001]}}', '0001-01-01 00:00:00.000001+00 BC'),
                                                     (1000002, 123456789012345678901234567890.123456789, 'null', 'infinity'),
                                                     (1000003, NULL, NULL, NULL)`);
    await c.query(`INSERT INTO people SELECT 'person ' || g, g, CASE WHEN g % 2 = 0 THEN ${BIG} END FROM generate_series(1, 60) g`);
    await c.query(`INSERT INTO events SELECT g % 10, 'e' || (g % 5) FROM generate_series(1, 80) g`); // duplicates on purpose
    await c.query(`INSERT INTO settings VALUES ('a', '1'), ('b', '{"x": true}'), ('c', '[1,2]')`);

    // Updates: plain, TOAST-unchanged ('u'), shard-key changes with and without TOAST values.
    await c.query(`UPDATE items SET i = i + 1, n = n * 2 WHERE id % 3 = 0`);
    await c.query(`UPDATE items SET i = -i, tarr = tarr || ARRAY['new'] WHERE id BETWEEN 8 AND 40`);
    await c.query(`UPDATE items SET id = id + 5000 WHERE id BETWEEN 41 AND 90`);
    await c.query(`UPDATE people SET name = name || ' moved', age = -age WHERE age BETWEEN 10 AND 40`);
    await c.query(`UPDATE events SET payload = 'changed' WHERE account_id = 3 AND payload = 'e3'`);
    await c.query(`UPDATE events SET account_id = account_id + 100 WHERE account_id = 4`);
    await c.query(`UPDATE settings SET v = '"updated"' WHERE k = 'b'`);

    // Deletes and TRUNCATE.
    await c.query(`DELETE FROM items WHERE id % 7 = 0`);
    await c.query(`DELETE FROM people WHERE age % 5 = 0`);
    await c.query(`DELETE FROM events WHERE ctid = (SELECT ctid FROM events WHERE account_id = 2 LIMIT 1)`);
    await c.query(`DELETE FROM settings WHERE k = 'c'`);
    await c.query(`TRUNCATE people`);
    await c.query(`INSERT INTO people VALUES ('after truncate', 1, ${BIG}), ('zed', 2, NULL)`);

    // Large transactions (> logical_decoding_work_mem = 64kB): streamed in segments. One commits
    // after rolling back a savepoint (its changes must be dropped), one aborts entirely.
    await c.query('BEGIN');
    await c.query(`INSERT INTO items (id, t, j) SELECT g, repeat('x', 50), '{"big": 1}' FROM generate_series(10000, 13000) g`);
    await c.query('SAVEPOINT sp');
    await c.query(`INSERT INTO items (id, t) SELECT g, 'rolled back' FROM generate_series(20000, 21000) g`);
    await c.query('ROLLBACK TO SAVEPOINT sp');
    await c.query(`UPDATE items SET i = 42 WHERE id BETWEEN 10000 AND 10500`);
    await c.query(`DELETE FROM items WHERE id BETWEEN 12000 AND 12100`);
    await c.query('COMMIT');
    await c.query('BEGIN');
    await c.query(`INSERT INTO items (id, t) SELECT g, 'aborted' FROM generate_series(30000, 33000) g`);
    await c.query('ROLLBACK');

    await s.waitForLsn(await currentWalLsn(src, 'app'), 30_000);
    assert.deepEqual(errors, []);
    await assertAll();
    assert.equal((await dst.query(`SELECT count(*)::int AS n FROM items WHERE t = 'rolled back' OR t = 'aborted'`, [], 'shard0'))[0].n, 0);
    const streamed = await src.query<{ n: number }>(`SELECT stream_txns::int AS n FROM pg_stat_replication_slots WHERE slot_name = 's1'`, [], 'app');
    assert.ok((streamed[0]?.n ?? 0) >= 1, 'the large transaction must have been streamed in segments');
    assert.ok(s.stats.inserts > 3000 && s.stats.updates > 0 && s.stats.deletes > 0 && s.stats.truncates === 1, JSON.stringify(s.stats));

    // Idle and caught up: lag reaches zero.
    await until('lag 0 bytes', async () => (await s.lagBytes()) === 0);
    assert.equal(s.lagSeconds(), 0);

    // Stop confirms exactly what was applied; the slot is free again.
    const applied = s.appliedLsn;
    await s.stop();
    const slot = await src.query<{ lsn: string; active: boolean }>(`SELECT confirmed_flush_lsn::text AS lsn, active FROM pg_replication_slots WHERE slot_name = 's1'`, [], 'app');
    assert.equal(slot[0].lsn, formatLsn(applied));

    // Writes while stopped are picked up by a new stream on the same slot and origin.
    await c.query(`INSERT INTO items (id, t, big) VALUES (777777, 'while stopped', ${BIG})`);
    await c.query(`UPDATE items SET id = 888888 WHERE id = 777777`);
    await c.query(`UPDATE items SET t = 'toast kept' WHERE id = 888888`);
    await c.query(`INSERT INTO settings VALUES ('d', '{}')`);
    const s2 = stream('s1');
    await until('slot released', async () => !(await src.query<{ active: boolean }>(`SELECT active FROM pg_replication_slots WHERE slot_name = 's1'`, [], 'app'))[0].active);
    await s2.start();
    try {
      await s2.waitForLsn(await currentWalLsn(src, 'app'), 30_000);
      await assertAll();
      assert.equal(s2.stats.inserts, 2, 'only the changes made while stopped are applied again');
    } finally {
      await s2.stop();
    }
  } finally {
    await s.stop();
  }
});

test('binary mode round-trips the same values', async () => {
  await c.query(`SELECT pg_create_logical_replication_slot('sb', 'pgoutput')`);
  const s = new ReplicationStream({
    source: topo.source,
    destination: topo.destination,
    destDatabase: 'dst',
    config: topo.config,
    slot: 'sb',
    publication: 'pub',
    log: silentLogger(),
    originName: 'pgshift_sb',
    binary: true,
  });
  await s.start();
  try {
    await c.query(`INSERT INTO items SELECT g, g, g / 3.0, 'b' || g, '\\x0001', '{"k": [1, 2]}', now(), ARRAY[g], ARRAY['z'], 'ok', gen_random_uuid(), true, NULL
                   FROM generate_series(500000, 500300) g`);
    await c.query(`UPDATE items SET id = id + 1000000 WHERE id BETWEEN 500000 AND 500100`);
    await c.query(`DELETE FROM items WHERE id BETWEEN 500200 AND 500250`);
    await s.waitForLsn(await currentWalLsn(src, 'app'), 30_000);
    await assertSameRows(src, 'app', dst, DST, 'items');
    await assertPlacement(dst, DST, 'items', 'id', 'bigint');
  } finally {
    await s.stop();
  }
});
