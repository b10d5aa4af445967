/**
 * A sharded database for tests: N databases (shard_0 … shard_N-1) on one PostgreSQL cluster,
 * configured as one logical database "app" in pgshift, plus the `[[sharded_tables]]` lines given.
 */
import { before, after } from 'node:test';
import { PgCluster } from './pg-cluster.js';
import { startProxy, type ProxyFixture } from './proxy.js';

export async function startShardedProxy(pg: PgCluster, shards: number, shardedTables: string, general = '', schemaSql = ''): Promise<ProxyFixture> {
  let databases = '';
  for (let i = 0; i < shards; i++) {
    await pg.createDatabase(`shard_${i}`);
    if (schemaSql) await pg.query(schemaSql, [], `shard_${i}`);
    databases += `[[databases]]\nname = "app"\nhost = "127.0.0.1"\nport = ${pg.port}\ndatabase_name = "shard_${i}"\nshard = ${i}\n\n`;
  }
  return startProxy(pg, { databases, general, extra: shardedTables });
}

/** Starts a cluster and a sharded proxy before a test file's tests and stops both after them. */
export function withShardedProxy(shards: number, shardedTables: string, general: string, schemaSql: string): { cluster: PgCluster; px: ProxyFixture } {
  const f = {} as { cluster: PgCluster; px: ProxyFixture };
  before(async () => {
    f.cluster = await PgCluster.start();
    f.px = await startShardedProxy(f.cluster, shards, shardedTables, general, schemaSql);
  });
  after(async () => {
    await f.px?.stop();
    await f.cluster?.stop();
  });
  return f;
}
