/**
 * PostgreSQL-compatible sharding: the public surface other modules code against.
 * See docs/sharding.md for the algorithm, configuration and NULL handling.
 */
export type { TableSharder } from './sharder.js';
export { createTableSharder, shardOfValue } from './sharder.js';
export { ShardingSchema } from './schema.js';
