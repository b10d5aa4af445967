/**
 * The cutover's config swap (DESIGN.md §5 step 5): every place that names `source` names
 * `destination` and vice versa, so clients that connect to the source's name reach the
 * destination's servers, with the destination's users, sharding rules and omnisharded tables.
 */
import type { Config } from './types.js';

/**
 * Returns a new Config with `source` and `destination` exchanged in [[databases]].name,
 * [[users]].database, [[sharded_tables]].database, [[sharded_mappings]].database and
 * [[omnisharded_tables]].database. Pure: the input is not modified. A database entry whose
 * database_name is unset gets its old name as database_name, so it still reaches the same
 * physical database (loaded configs always have it set, so swapping twice is the identity).
 */
export function swapDatabases(config: Config, source: string, destination: string): Config {
  if (source === destination) {
    throw new Error(`cannot swap database "${source}" with itself`);
  }
  const swap = (name: string): string => (name === source ? destination : name === destination ? source : name);
  const next = structuredClone(config);
  for (const d of next.databases) {
    if (d.database_name === undefined) d.database_name = d.name;
    d.name = swap(d.name);
  }
  for (const u of next.users) u.database = swap(u.database);
  for (const t of next.sharded_tables) t.database = swap(t.database);
  for (const m of next.sharded_mappings) m.database = swap(m.database);
  for (const o of next.omnisharded_tables) o.database = swap(o.database);
  return next;
}
