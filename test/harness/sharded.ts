/**
 * A sharded database for tests: N databases (shard_0 … shard_N-1) on one PostgreSQL cluster,
 * configured as one logical database "app" in pgshift, plus the `[[sharded_tables]]` lines given.
 */
import type { PgCluster } from './pg-cluster.js';
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
