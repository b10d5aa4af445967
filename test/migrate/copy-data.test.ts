// The initial copy runs under the slot's exported snapshot: while a writer keeps changing the
// source, each destination table ends up equal to the source *as of the snapshot* (same row
// count and checksum computed under that very snapshot), every row on the shard PostgreSQL's
// hash partitioning gives its key, and full-copy tables on every shard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgCluster } from '../harness/pg-cluster.js';
import { shardEndpoints } from '../../src/migrate/endpoints.js';
import { createSlotWithSnapshot, dropSlot, importSnapshot } from '../../src/migrate/snapshot.js';
import { copyData } from '../../src/migrate/copy/copy-data.js';
import { publishedTables } from '../../src/migrate/catalog.js';
import { schemaSync } from '../../src/migrate/schema/schema-sync.js';
import { ShardingSchema } from '../../src/sharding/index.js';
import { TableCopy } from '../../src/migrate/copy/table-progress.js';
import { connect } from '../../src/migrate/endpoints.js';
import { silentLogger } from '../../src/observe/log.js';
import type { Config } from '../../src/config/types.js';
import {
  FINGERPRINT, SCHEMA, seedSql, moveConfig, startWriter, destFingerprint, assertPlacedByPostgres, fingerprint, slotNames, type Place, type Fingerprint,
} from './move-helpers.js';

let src: PgCluster;
let dst: PgCluster;

before(async () => {
  [src, dst] = await Promise.all([PgCluster.start(), PgCluster.start()]);
});
after(async () => {
  await Promise.all([src?.stop(), dst?.stop()]);
});

const TABLES = ['countries', 'customers', 'events'];

/** Creates slots + snapshots, fingerprints the source under them, copies, and returns both. */
async function snapshotCopy(config: Config, slotBase: string, chunkBlocks: number) {
  const source = shardEndpoints(config, 'src');
  const destination = shardEndpoints(config, 'dst');
  const log = silentLogger();
  await schemaSync('pre', { source, destination, publication: 'pub', log });
  const snaps = await Promise.all(source.map((e) => createSlotWithSnapshot(e, `${slotBase}_${e.shard}`, 150000)));
  try {
    // What the copy must reproduce: the source under the very snapshots the copy imports.
    const atSnapshot = new Map<string, Fingerprint>();
    for (const s of snaps) {
      const c = await importSnapshot(s.endpoint, s.snapshotName);
      try {
        for (const t of TABLES) {
          const r = (await c.query(FINGERPRINT(t))).rows[0];
          const prev = atSnapshot.get(t) ?? { n: 0, h: 0n };
          // countries is a full copy on every source shard: read once.
          if (t === 'countries' && s.endpoint.shard > 0) continue;
          atSnapshot.set(t, { n: prev.n + Number(r[0]), h: prev.h + BigInt(r[1]!) });
        }
      } finally {
        c.destroy();
      }
    }
    const tables = await (async () => {
      const c = await connect(source[0]);
      try {
        return await publishedTables(c, 'pub');
      } finally {
        c.destroy();
      }
    })();
    const progress = new Map<string, TableCopy>();
    await copyData({
      source,
      destination,
      snapshots: snaps.map((s) => s.snapshotName),
      tables,
      sharding: new ShardingSchema('dst', config.sharded_tables, config.sharded_mappings, config.omnisharded_tables, destination.length),
      parallel: 2,
      chunkBlocks,
      progress,
      signal: new AbortController().signal,
      log,
    });
    return { atSnapshot, progress };
  } finally {
    for (const s of snaps) {
      s.close();
      await dropSlot(s.endpoint, s.slot);
    }
  }
}

test('copy 1 -> 2 shards under the exported snapshot while a writer inserts and updates', async () => {
  const source: Place = { pg: src, db: 'c1_src' };
  const dests: Place[] = [{ pg: dst, db: 'c1_d0' }, { pg: dst, db: 'c1_d1' }];
  await src.createDatabase(source.db);
  for (const d of dests) await dst.createDatabase(d.db);
  await src.query(SCHEMA + seedSql(4000), [], source.db);
  const config = moveConfig([source], dests);

  const writer = startWriter(source);
  await new Promise((r) => setTimeout(r, 100));
  const { atSnapshot, progress } = await snapshotCopy(config, 'c1', 8); // 8-block ranges: customers is split
  const written = await writer.stop();
  assert.ok(written > 0, 'the writer ran during the copy');

  for (const t of ['customers', 'events']) {
    const want = atSnapshot.get(t)!;
    const got = await destFingerprint(dests, t);
    assert.deepEqual(got, want, `${t}: destination shards equal the source as of the snapshot`);
    assert.equal(progress.get(`public.${t}`)?.rows, want.n, `${t}: progress counts every copied row`);
    assert.equal(progress.get(`public.${t}`)?.status, 'finished');
    const end = await fingerprint(source, t);
    assert.ok(end.n > want.n, `${t}: the source moved on after the snapshot (${end.n} > ${want.n})`);
    // Keys copied are a subset of the keys on the source now (the writer never deletes).
    for (const d of dests) {
      const keys = (await d.pg.query<{ id: string }>(`SELECT id::text AS id FROM ${t}`, [], d.db)).map((r) => r.id);
      const [{ n }] = await src.query<{ n: string }>(`SELECT count(*) AS n FROM ${t} WHERE id::text = ANY($1)`, [keys], source.db);
      assert.equal(Number(n), keys.length, `${t} on ${d.db}: every copied key exists on the source`);
    }
  }
  const bytes = progress.get('public.customers')!.bytes;
  assert.ok(bytes > 4000 * 50, `bytes are counted (${bytes})`);
  await assertPlacedByPostgres(dests, 'customers', 'id', 'bigint');
  await assertPlacedByPostgres(dests, 'events', 'id', 'uuid');
  for (const d of dests) {
    assert.ok((await fingerprint(d, 'customers')).n > 1000, `${d.db} got a share of the sharded rows`);
    assert.deepEqual(await fingerprint(d, 'countries'), atSnapshot.get('countries'), `${d.db}: omnisharded table copied whole`);
  }
  assert.deepEqual(await slotNames(source), []);
});

test('copy 2 -> 3 shards: sharded rows from every source shard, full-copy tables read once, NULL keys on shard 0', async () => {
  const sources: Place[] = [{ pg: src, db: 'c2_s0' }, { pg: src, db: 'c2_s1' }];
  const dests: Place[] = [{ pg: dst, db: 'c2_d0' }, { pg: dst, db: 'c2_d1' }, { pg: dst, db: 'c2_d2' }];
  for (const s of sources) await src.createDatabase(s.db);
  for (const d of dests) await dst.createDatabase(d.db);
  await src.query(SCHEMA + seedSql(700), [], sources[0].db);
  // Shards own disjoint key ranges, as real shards do.
  await src.query(SCHEMA + `SELECT setval('customers_id_seq', 700);` + seedSql(500, 700), [], sources[1].db);
  // A table sharded on a nullable column: NULL keys go to NULL_KEY_SHARD (0).
  for (const [i, s] of sources.entries()) {
    await src.query(
      `CREATE TABLE notes (id bigserial PRIMARY KEY, owner bigint, body text);
       SELECT setval('notes_id_seq', ${i * 1000 + 1});
       INSERT INTO notes (owner, body) SELECT CASE WHEN g % 4 = 0 THEN NULL ELSE g END, 'n' || g FROM generate_series(1, 300) g;
       ALTER PUBLICATION pub ADD TABLE notes;`,
      [],
      s.db,
    );
  }
  const sharded = `[[sharded_tables]]\ndatabase = "dst"\nname = "customers"\ncolumn = "id"\n\n[[sharded_tables]]\ndatabase = "dst"\nname = "events"\ncolumn = "id"\ndata_type = "uuid"\n\n[[sharded_tables]]\ndatabase = "dst"\nname = "notes"\ncolumn = "owner"\n`;
  const config = moveConfig(sources, dests, sharded);
  const { atSnapshot } = await snapshotCopy(config, 'c2', 0);
  for (const t of ['customers', 'events']) assert.deepEqual(await destFingerprint(dests, t), atSnapshot.get(t), `${t}: union of 3 shards = union of 2 sources`);
  for (const d of dests) assert.deepEqual(await fingerprint(d, 'countries'), atSnapshot.get('countries'), `${d.db}: countries read from one source shard only`);
  const notes = await destFingerprint(dests, 'notes');
  assert.equal(notes.n, 600);
  await assertPlacedByPostgres(dests, 'customers', 'id', 'bigint');
  await assertPlacedByPostgres(dests, 'notes', 'owner', 'bigint');
  const [nulls] = await dst.query<{ n: string }>(`SELECT count(*) AS n FROM notes WHERE owner IS NULL`, [], dests[0].db);
  assert.equal(Number(nulls.n), 150, 'every NULL-key row of both sources is on shard 0');
});
