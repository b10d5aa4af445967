// Shared helpers for the streaming tests: a config for a 2-shard destination, schema, and the
// "union of destination shards equals the source, every row on its shard" check.
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/index.js';
import type { Config } from '../../src/config/types.js';
import { shardEndpoints, type Endpoint } from '../../src/migrate/endpoints.js';
import { shardOfValue } from '../../src/sharding/index.js';
import type { ShardDataType } from '../../src/config/types.js';
import type { PgCluster } from '../harness/pg-cluster.js';

export interface Topology {
  config: Config;
  source: Endpoint;
  destination: Endpoint[];
}

/** Source database `srcDb` on `src`; destination shards `dstDbs[i]` on `dst`. */
export function topology(src: PgCluster, srcDb: string, dst: PgCluster, dstDbs: string[], shardedTables: string, omni: string[]): Topology {
  const dbs = [`[[databases]]\nname = "src"\nhost = "127.0.0.1"\nport = ${src.port}\ndatabase_name = "${srcDb}"\n`];
  dstDbs.forEach((d, i) => dbs.push(`[[databases]]\nname = "dst"\nhost = "127.0.0.1"\nport = ${dst.port}\ndatabase_name = "${d}"\nshard = ${i}\n`));
  const toml = `${dbs.join('\n')}\n${shardedTables}\n[[omnisharded_tables]]\ndatabase = "dst"\ntables = ${JSON.stringify(omni)}\n`;
  const users = `[[users]]\nname = "postgres"\ndatabase = "src"\npassword = "postgres"\n\n[[users]]\nname = "postgres"\ndatabase = "dst"\npassword = "postgres"\n`;
  const config = parseConfig(toml, users, {}, {});
  return { config, source: shardEndpoints(config, 'src')[0], destination: shardEndpoints(config, 'dst') };
}

/** All rows of `table` as row-literal text, sorted (order-insensitive multiset comparison). */
export async function rowsText(pg: PgCluster, db: string, table: string): Promise<string[]> {
  const r = await pg.query<{ r: string }>(`SELECT rowval::text AS r FROM ${table} rowval`, [], db);
  return r.map((x) => x.r).sort();
}

/** Asserts union(destination shards) == source as multisets: nothing lost, nothing doubled. */
export async function assertSameRows(src: PgCluster, srcDb: string, dst: PgCluster, dstDbs: string[], table: string): Promise<number> {
  const want = await rowsText(src, srcDb, table);
  const got: string[] = [];
  for (const d of dstDbs) got.push(...(await rowsText(dst, d, table)));
  got.sort();
  assert.equal(got.length, want.length, `${table}: ${got.length} rows on the destination shards, ${want.length} on the source`);
  assert.deepEqual(got, want, `${table}: destination shards differ from the source`);
  return want.length;
}

/** Asserts every row of `table` on shard i has a key that hashes to shard i. */
export async function assertPlacement(dst: PgCluster, dstDbs: string[], table: string, column: string, type: ShardDataType): Promise<void> {
  for (let s = 0; s < dstDbs.length; s++) {
    const r = await dst.query<{ k: string | null }>(`SELECT ${column}::text AS k FROM ${table}`, [], dstDbs[s]);
    for (const { k } of r) {
      const want = k === null ? 0 : shardOfValue(type, k, dstDbs.length);
      assert.equal(want, s, `${table}.${column} = ${k} sits on shard ${s} but hashes to shard ${want}`);
    }
  }
}

/**
 * The WAL insert position: past every commit made so far. (pg_current_wal_lsn() is the write
 * position, which lags behind asynchronous commits — the test clusters run synchronous_commit = off.)
 */
export async function currentWalLsn(pg: PgCluster, db: string): Promise<bigint> {
  const r = await pg.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l', [], db);
  const [hi, lo] = r[0].l.split('/');
  return (BigInt('0x' + hi) << 32n) | BigInt('0x' + lo);
}

export async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
