// Pre-flight refuses a migration that cannot work, with one message naming what to fix, and
// creates nothing (no slot on the source, no table on the destination, no task).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { PgError } from '../../src/wire/pg-error.js';
import { TaskRegistry } from '../../src/migrate/tasks/task-registry.js';
import { startCopyData } from '../../src/migrate/tasks/tasks.js';
import { runPreflight } from '../../src/migrate/schema/preflight.js';
import { shardEndpoints } from '../../src/migrate/endpoints.js';
import { moveConfig, moveContext, SCHEMA, slotNames, tableNames, type Place } from './move-helpers.js';

let pg: PgCluster;
let replica: PgCluster; // wal_level = replica: not usable as a logical source
const src = (): Place => ({ pg, db: 'pf_src' });
const dst = (): Place[] => [{ pg, db: 'pf_d0' }, { pg, db: 'pf_d1' }];

before(async () => {
  [pg, replica] = await Promise.all([PgCluster.start(), PgCluster.start({ settings: { wal_level: 'replica' } })]);
  for (const d of ['pf_src', 'pf_d0', 'pf_d1']) await pg.createDatabase(d);
  await pg.query(SCHEMA, [], 'pf_src');
  await pg.query(`CREATE TABLE nokey (a int, b text); ALTER PUBLICATION pub ADD TABLE nokey; CREATE PUBLICATION empty_pub`, [], 'pf_src');
  await replica.createDatabase('pf_src');
  await replica.query(SCHEMA, [], 'pf_src');
});
after(async () => {
  await Promise.all([pg?.stop(), replica?.stop()]);
});

async function refused(config = moveConfig([src()], dst()), publication = 'pub', slot?: string): Promise<PgError> {
  const ctx = moveContext(config);
  const reg = await TaskRegistry.open(ctx.stateDir, ctx.log);
  const before = await slotNames(src());
  const err = await startCopyData(reg, ctx, { source: 'src', destination: 'dst', publication, slot }).then(
    () => assert.fail('COPY_DATA should have been refused'),
    (e: unknown) => e as PgError,
  );
  assert.ok(err instanceof PgError, `expected a PgError, got ${String(err)}`);
  assert.deepEqual(await slotNames(src()), before, 'a refused COPY_DATA must not create a replication slot');
  for (const d of dst()) assert.deepEqual(await tableNames(d), [], `a refused COPY_DATA must not create tables on ${d.db}`);
  assert.equal(reg.list().length, 0, 'a refused COPY_DATA must not register a task');
  return err;
}

test('a table without primary key or replica identity is named, and nothing is created', async () => {
  const err = await refused();
  assert.match(err.message, /pre-flight check failed: table public\.nokey .* has no primary key and no usable replica identity/);
  assert.match(err.hint ?? '', /REPLICA IDENTITY FULL/);
});

test('a missing publication is named with the CREATE PUBLICATION that fixes it', async () => {
  const err = await refused(undefined, 'nope');
  assert.equal(err.code, '42704');
  assert.match(err.message, /publication "nope" does not exist on source shard 0/);
  assert.match(err.hint ?? '', /CREATE PUBLICATION nope/);
});

test('an empty publication is refused', async () => {
  const err = await refused(undefined, 'empty_pub');
  assert.match(err.message, /publication "empty_pub" .* contains no tables/);
});

test('wal_level other than logical on the source is refused', async () => {
  const err = await refused(moveConfig([{ pg: replica, db: 'pf_src' }], dst()), 'pub');
  assert.match(err.message, /wal_level = replica; logical replication needs wal_level = logical/);
  assert.deepEqual(await slotNames({ pg: replica, db: 'pf_src' }), []);
});

test('an existing slot of the same name is refused unless resuming', async () => {
  await pg.query(`SELECT pg_create_logical_replication_slot('taken_slot', 'pgoutput')`, [], 'pf_src');
  try {
    await pg.query(`ALTER TABLE nokey REPLICA IDENTITY FULL`, [], 'pf_src');
    const err = await refused(undefined, 'pub', 'taken_slot');
    assert.equal(err.code, '42710');
    assert.match(err.message, /replication slot "taken_slot" already exists on source shard 0/);
    // The same slot is accepted when it is meant to be reused (REPLICATE / resume).
    const config = moveConfig([src()], dst());
    const res = await runPreflight({ source: shardEndpoints(config, 'src'), destination: shardEndpoints(config, 'dst'), publication: 'pub', slots: ['taken_slot'], reuseSlots: true });
    assert.deepEqual(res.existingSlots, [true]);
    assert.deepEqual(res.tables.map((t) => t.name), ['countries', 'customers', 'events', 'nokey']);
  } finally {
    await pg.query(`ALTER TABLE nokey REPLICA IDENTITY DEFAULT`, [], 'pf_src');
    await pg.query(`SELECT pg_drop_replication_slot('taken_slot')`, [], 'pf_src');
  }
});

test('an unreachable destination shard is named', async () => {
  const config = moveConfig([src()], [{ pg, db: 'pf_d0' }, { pg, db: 'no_such_db' }]);
  const err = await refused(config);
  assert.match(err.message + ' ' + (err.detail ?? ''), /destination shard 1 \(127\.0\.0\.1:\d+\/no_such_db\) is not reachable as user "postgres": .*no_such_db/);
});

test('a read-only destination user is named', async () => {
  await pg.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reader') THEN CREATE ROLE reader LOGIN PASSWORD 'reader'; END IF; END $$`);
  await pg.query(`REVOKE TEMP ON DATABASE pf_d1 FROM PUBLIC`);
  try {
    const base = moveConfig([src()], dst());
    const config = { ...base, users: [...base.users.filter((u) => u.database === 'src'), { name: 'reader', database: 'dst', password: 'reader' }] };
    await pg.query(`ALTER TABLE nokey REPLICA IDENTITY FULL`, [], 'pf_src');
    const err = await refused(config);
    assert.match(err.message, /destination shard 1 .* is not writable by user "reader"/);
  } finally {
    await pg.query(`ALTER TABLE nokey REPLICA IDENTITY DEFAULT`, [], 'pf_src');
    await pg.query(`GRANT TEMP ON DATABASE pf_d1 TO PUBLIC`);
  }
});
