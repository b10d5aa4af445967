/** Read-only views of the configured databases: logical names and their shards. */
import type { Config, DatabaseConfig } from './types.js';

/** Distinct logical database names, in first-appearance order. */
export function databaseNames(config: Config): string[] {
  return [...new Set(config.databases.map((d) => d.name))];
}

const ROLE_ORDER = { primary: 0, auto: 1, replica: 2 } as const;

/**
 * The servers of database `name`, indexed by shard number. Each entry lists the primary first
 * (when the shard has one), then `auto` servers, then replicas, in file order within a role;
 * check `.role` rather than assuming entry[0] is a primary. Unknown name → [].
 */
export function shardsOf(config: Config, name: string): DatabaseConfig[][] {
  const shards: DatabaseConfig[][] = [];
  for (const d of config.databases) {
    if (d.name !== name) continue;
    (shards[d.shard] ??= []).push(d);
  }
  for (let i = 0; i < shards.length; i++) {
    shards[i] = (shards[i] ?? []).slice().sort((a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role]);
  }
  return shards;
}

/** Number of shards of database `name` (0 when it is not configured). */
export function shardCount(config: Config, name: string): number {
  let max = -1;
  for (const d of config.databases) if (d.name === name && d.shard > max) max = d.shard;
  return max + 1;
}

/** The physical database name on the server (database_name, defaulting to name). */
export function serverDatabaseName(db: DatabaseConfig): string {
  return db.database_name ?? db.name;
}
