/**
 * How one published table is split for the copy: ctid ranges of heap blocks. Which column
 * routes its rows is the sharding schema's placement rule (ShardingSchema.shardKey): a sharded
 * table is read from every source shard and each row goes to the shard its key names; a full
 * copy (omnisharded, or no rule) is read from source shard 0 and every destination shard gets
 * every row.
 */

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
