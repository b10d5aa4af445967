/**
 * A sharded database for tests: N databases (shard_0 … shard_N-1) on one PostgreSQL cluster,
 * configured as one logical database "app" in pgshift, plus the `[[sharded_tables]]` lines given.
 */
import { before, after } from 'node:test';
import { PgCluster } from './pg-cluster.js';
import { shardOfValue } from '../../src/sharding/index.js';
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

/** One sharded proxy on its own cluster, for tests that run once with two-phase commit and once without. */
export interface CommitSetup {
  name: string;
  shards: number;
  general: string;
  cluster?: PgCluster;
  px?: ProxyFixture;
}

/**
 * Two sharded proxies, started before a test file's tests and stopped after them: `off` has 3
 * shards and plain commits, `on` 2 shards and two_phase_commit = true.
 */
export function withCommitSetups(shardedTables: string, schemaSql: string): { off: CommitSetup; on: CommitSetup } {
  const off: CommitSetup = { name: '2PC off', shards: 3, general: '' };
  const on: CommitSetup = { name: '2PC on', shards: 2, general: 'two_phase_commit = true' };
  before(async () => {
    await Promise.all(
      [off, on].map(async (s) => {
        s.cluster = await PgCluster.start();
        s.px = await startShardedProxy(s.cluster, s.shards, shardedTables, s.general, schemaSql);
      }),
    );
  });
  after(async () => {
    for (const s of [off, on]) {
      await s.px?.stop();
      await s.cluster?.stop();
    }
  });
  return { off, on };
}

/** The k-th bigint key (1, 2, …) that lives on `shard` of `shards`. */
export function bigintKeyOnShard(shards: number, shard: number, k = 0): number {
  const found: number[] = [];
  for (let id = 1; found.length <= k; id++) if (shardOfValue('bigint', String(id), shards) === shard) found.push(id);
  return found[k];
}
