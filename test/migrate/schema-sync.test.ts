// Schema sync creates the publication's objects on every destination shard, in two phases,
// idempotently; the cutover phase moves every destination sequence past the source's,
// interleaved across the shards of a sharded table.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { schemaSync } from '../../src/migrate/schema/schema-sync.js';
import { shardEndpoints } from '../../src/migrate/endpoints.js';
import { silentLogger } from '../../src/observe/log.js';
import { ShardingSchema } from '../../src/sharding/index.js';
import { moveConfig, SCHEMA, seedSql, type Place } from './move-helpers.js';

let src: PgCluster;
let dst: PgCluster;
const dstDbs = ['ss_d0', 'ss_d1'];
const places = (): Place[] => dstDbs.map((db) => ({ pg: dst, db }));

before(async () => {
  [src, dst] = await Promise.all([PgCluster.start(), PgCluster.start()]);
  await src.createDatabase('ss_src');
  for (const d of dstDbs) await dst.createDatabase(d);
  await src.query(
    `${SCHEMA}
     CREATE SCHEMA app;
     CREATE TYPE app.point2 AS (x float8, y float8);
     CREATE DOMAIN app.positive AS int CHECK (VALUE > 0);
     CREATE TABLE app.things (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, p app.point2, n app.positive, label varchar(20) COLLATE "C" NOT NULL DEFAULT 'x',
                              twice int GENERATED ALWAYS AS (n * 2) STORED, UNIQUE (label, n));
     CREATE TABLE app.audit (at timestamptz NOT NULL, what text, thing int REFERENCES app.things(id));
     ALTER TABLE app.audit REPLICA IDENTITY FULL;
     CREATE UNIQUE INDEX events_customer_idx ON events (customer_id) WHERE customer_id IS NOT NULL;
     ALTER PUBLICATION pub ADD TABLE app.things, app.audit;
     ${seedSql(50)}
     INSERT INTO app.things (n) VALUES (1), (2), (3);`,
    [],
    'ss_src',
  );
});
after(async () => {
  await Promise.all([src?.stop(), dst?.stop()]);
});

function opts() {
  const config = moveConfig([{ pg: src, db: 'ss_src' }], places());
  const sharding = new ShardingSchema('dst', config.sharded_tables, config.sharded_mappings, config.omnisharded_tables, dstDbs.length);
  return { source: shardEndpoints(config, 'src'), destination: shardEndpoints(config, 'dst'), publication: 'pub', log: silentLogger(), sharding };
}

async function describe(p: Place): Promise<Record<string, unknown>> {
  const q = async (sql: string) => (await p.pg.query<{ x: unknown }>(sql, [], p.db)).map((r) => r.x);
  return {
    tables: await q(`SELECT n.nspname || '.' || c.relname || ':' || c.relreplident::text AS x FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname IN ('public', 'app') ORDER BY 1`),
    columns: await q(`SELECT table_schema || '.' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity || ' ' || is_generated AS x
                        FROM information_schema.columns WHERE table_schema IN ('public', 'app') ORDER BY table_schema, table_name, ordinal_position`),
    types: await q(`SELECT t.typname || ':' || t.typtype::text AS x FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname IN ('public', 'app') AND t.typtype IN ('e', 'c', 'd') AND (t.typtype <> 'c' OR t.typrelid IN (SELECT oid FROM pg_class WHERE relkind = 'c')) ORDER BY 1`),
    enum: await q(`SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) AS x FROM pg_enum WHERE enumtypid = 'mood'::regtype`),
    sequences: await q(`SELECT schemaname || '.' || sequencename AS x FROM pg_sequences ORDER BY 1`),
    constraints: await q(`SELECT conrelid::regclass::text || ' ' || contype::text || ' ' || pg_get_constraintdef(oid) AS x FROM pg_constraint WHERE connamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'app')) AND contype <> 'n' ORDER BY 1`),
    indexes: await q(`SELECT indexdef AS x FROM pg_indexes WHERE schemaname IN ('public', 'app') ORDER BY 1`),
  };
}

test('pre creates types, sequences, tables and primary keys on every shard; post adds indexes and constraints; both are idempotent', async () => {
  const source = await describe({ pg: src, db: 'ss_src' });
  const pre = await schemaSync('pre', opts());
  assert.ok(pre.statements > 5);
  for (const p of places()) {
    const d = await describe(p);
    assert.deepEqual(d.tables, source.tables, `${p.db}: tables and replica identity`);
    assert.deepEqual(d.types, source.types, `${p.db}: enum / composite / domain types`);
    assert.deepEqual(d.enum, source.enum, `${p.db}: enum labels in order`);
    assert.deepEqual(d.sequences, source.sequences, `${p.db}: sequences`);
    // Identity columns become BY DEFAULT so replication may write the source's values.
    assert.deepEqual(d.columns, source.columns, `${p.db}: columns, defaults, NOT NULL, identity, generated`);
    const [ident] = await p.pg.query<{ g: string }>(`SELECT identity_generation AS g FROM information_schema.columns WHERE table_name = 'things' AND column_name = 'id'`, [], p.db);
    assert.equal(ident.g, 'BY DEFAULT');
    assert.deepEqual(
      (d.constraints as string[]).filter((c) => / p /.test(c)),
      (source.constraints as string[]).filter((c) => / p /.test(c)),
      `${p.db}: primary keys before the copy`,
    );
    assert.ok(!(d.constraints as string[]).some((c) => / f /.test(c)), 'no foreign key before the copy');
    assert.ok(!(d.indexes as string[]).some((i) => i.includes('customers_name_idx')), 'no secondary index before the copy');
  }
  await schemaSync('pre', opts()); // again: nothing fails, nothing doubles
  const post = await schemaSync('post', opts());
  assert.deepEqual(post.skipped, []);
  await schemaSync('post', opts());
  for (const p of places()) {
    const d = await describe(p);
    assert.deepEqual(d.constraints, source.constraints, `${p.db}: every constraint after post`);
    assert.deepEqual(d.indexes, source.indexes, `${p.db}: every index after post`);
    assert.deepEqual(d.tables, source.tables, `${p.db}: replica identity after post`);
  }
});

test('cutover interleaves the sequences of sharded tables across shards and keeps those of full-copy tables in step, identity columns included', async () => {
  await schemaSync('pre', opts());
  await src.query(`SELECT setval('customers_id_seq', 12345)`, [], 'ss_src');
  const res = await schemaSync('cutover', opts());
  assert.ok(res.statements >= 2);
  // customers is sharded on the destination: shard s hands out values ≡ s (mod 2), past 12345.
  const got = await Promise.all(places().map(async (p) => (await p.pg.query<{ v: string }>(`SELECT nextval('customers_id_seq')::text AS v FROM generate_series(1, 3)`, [], p.db)).map((r) => r.v)));
  assert.deepEqual(got, [['12346', '12348', '12350'], ['12347', '12349', '12351']]);
  // app.things has no sharding rule (a full copy on every shard): the same next value everywhere.
  for (const p of places()) {
    const [t] = await p.pg.query<{ v: string }>(`SELECT nextval(pg_get_serial_sequence('app.things', 'id'))::text AS v`, [], p.db);
    assert.equal(t.v, '4');
  }
});
