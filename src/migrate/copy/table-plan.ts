/**
 * How one published table is copied: which column routes its rows (and with which sharder),
 * which source shards it is read from, and how it is split into ctid ranges.
 *
 * - Sharded table (named in [[sharded_tables]], or having a column of a name-less entry):
 *   every source shard's rows are read and each row goes to the shard its key hashes to; a NULL
 *   key goes to NULL_KEY_SHARD (shard 0, where PostgreSQL's hash partitioning puts NULLs too).
 * - Omnisharded table, or a table with no sharding config: a full copy lives on every shard, so
 *   it is read from source shard 0 only and every destination shard gets every row.
 */
import type { ShardingSchema, TableSharder } from '../../sharding/index.js';
import { tableKey, type PublishedTable } from '../catalog.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';

export interface KeyColumn {
  index: number;
  sharder: TableSharder;
}

/** The routing column of `t`, or null when every destination shard gets every row. */
export function keyColumn(sharding: ShardingSchema, t: PublishedTable): KeyColumn | null {
  if (sharding.isOmnisharded(t.name, t.schema)) return null;
  const named = sharding.tableSharder(t.name, t.schema);
  if (named) {
    const index = t.columns.findIndex((c) => c.name === named.column);
    if (index < 0) {
      throw new PgError(
        SQLSTATE.configFileError,
        `table ${tableKey(t)} is sharded on column "${named.column}" in [[sharded_tables]] of database "${sharding.database}", but it has no such column`,
        { hint: `fix the column name in pgshift.toml, or list the table in [[omnisharded_tables]]` },
      );
    }
    return { index, sharder: named };
  }
  for (let index = 0; index < t.columns.length; index++) {
    const sharder = sharding.columnSharder(t.columns[index].name, t.name);
    if (sharder) return { index, sharder };
  }
  return null;
}

/** A half-open range of heap blocks; `to` null = to the end (rows added later land there). */
export interface BlockRange {
  from: number;
  to: number | null;
}

/** Splits a table of `blocks` blocks into ranges of about `chunkBlocks`; small tables stay whole. */
export function blockRanges(blocks: number, chunkBlocks: number): BlockRange[] {
  if (chunkBlocks <= 0 || blocks <= chunkBlocks) return [{ from: 0, to: null }];
  const out: BlockRange[] = [];
  for (let from = 0; from < blocks; from += chunkBlocks) {
    const to = from + chunkBlocks;
    out.push({ from, to: to >= blocks ? null : to });
  }
  return out;
}

export function rangePredicate(r: BlockRange): string {
  if (r.from === 0 && r.to === null) return '';
  const lo = `ctid >= '(${r.from},0)'::tid`;
  return r.to === null ? ` WHERE ${lo}` : ` WHERE ${lo} AND ctid < '(${r.to},0)'::tid`;
}
