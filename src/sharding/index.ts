/**
 * PostgreSQL-compatible sharding: the public surface other modules code against.
 * See docs/sharding.md for the algorithm, configuration and NULL handling.
 */
export type { TableSharder } from './sharder.js';
export { createTableSharder, shardOfValue } from './sharder.js';
export { ShardingSchema, type Placement, type ShardKey } from './schema.js';

/**
 * Where a row whose shard key is NULL is written (INSERT, COPY): shard 0, the partition
 * PostgreSQL's hash partitioning itself gives NULL keys (their row hash stays 0). Reads that
 * cannot pin a key go to all shards.
 */
export const NULL_KEY_SHARD = 0;
