/**
 * Where the applier sends a replicated table's changes: the destination table, its shard key
 * and how the shard holding a row's current version is found (see Locate), resolved once per
 * relation from the destination catalog and the sharding rules.
 */
import type { Logger } from '../../observe/log.js';
import { NULL_KEY_SHARD, type ShardingSchema, type TableSharder } from '../../sharding/index.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { loadTargetTable, type TargetTable } from './apply-sql.js';
import { COL_BINARY, COL_NULL, COL_UNCHANGED_TOAST, type RelationInfo, type TupleData } from '../../wire/pgoutput.js';
import type { ShardSession } from './shard-session.js';

/**
 * How the shard holding a row's current version is found for UPDATE and DELETE:
 * 'every': the table is not sharded here, every shard has the row;
 * 'identity': the shard key is a replica-identity column (or REPLICA IDENTITY FULL), so the
 *   old tuple names the shard;
 * 'probe': it is not: an UPDATE tries the new tuple's shard, and looks on the others only if
 *   the row is not there; a DELETE goes to every shard.
 */
export type Locate = 'every' | 'identity' | 'probe';

/** How a relation's rows are placed on the destination. */
export interface Route {
  target: TargetTable;
  sharder: TableSharder | null;
  /** Changes of this table come from another source shard's stream (see resolveRoute()). */
  ignore: boolean;
  /** Index of the shard-key column, -1 when every shard gets every row. */
  keyIdx: number;
  locate: Locate;
}

export interface RouteRules {
  /** Destination sharding; null when the destination has one shard. */
  sharding: ShardingSchema | null;
  sourceSharding?: ShardingSchema | null;
  sourceShard?: number;
  log: Logger;
}

/** Shard of a tuple that does not carry the shard key ('u'). */
export const UNKNOWN = -1;

/** Reads the destination table through `first` (outside any transaction) and builds the route. */
export async function resolveRoute(rel: RelationInfo, first: ShardSession, rules: RouteRules): Promise<Route> {
  const target = await loadTargetTable(first.conn, rel, `destination ${first.where}`);
  // The published columns: a column the publication leaves out cannot route a change.
  const table = { name: rel.name, schema: rel.namespace, columns: rel.columns };
  const key = rules.sharding?.shardKey(table) ?? null;
  const sharder = key?.sharder ?? null;
  const keyIdx = key ? key.index : -1;
  const locate: Locate = keyIdx < 0 ? 'every' : rel.columns[keyIdx].isKey ? 'identity' : 'probe';
  if (locate === 'probe') {
    rules.log.info(
      { table: target.qname, column: sharder!.column },
      "shard key is not part of the replica identity: UPDATE goes to the new key's shard and moves the row when it is not there; DELETE goes to every shard",
    );
  }
  // A table that is not sharded on a multi-shard source has a full copy on every source shard:
  // its changes arrive once per source shard, and only shard 0's are applied.
  let ignore = false;
  const src = rules.sourceSharding;
  if (src && rules.sourceShard !== 0) {
    ignore = src.shardKey(table) === null;
  }
  return { target, sharder: keyIdx >= 0 ? sharder : null, keyIdx, locate, ignore };
}

/** The shard a tuple's key names, NULL_KEY_SHARD for NULL, UNKNOWN for an unchanged TOAST key. */
export function shardOf(r: Route, t: TupleData): number {
  const k = t.kinds[r.keyIdx];
  if (k === COL_NULL) return NULL_KEY_SHARD;
  if (k === COL_UNCHANGED_TOAST) return UNKNOWN;
  const v = t.values[r.keyIdx] as Buffer;
  return k === COL_BINARY ? r.sharder!.shardOfBinary(v, 0, v.length) : r.sharder!.shardOfText(v);
}
