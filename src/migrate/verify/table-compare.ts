/**
 * Compares one table between the source and the destination, chunk by chunk, from the table's
 * resume point on.
 *
 * Range mode (a table with a key): the next chunk ends at the smallest of every shard's
 * `chunkRows`-th key past the previous end, so no shard (source or destination) has more than
 * `chunkRows` rows in a chunk; the last chunk is open-ended and also catches extra rows past
 * the source's end. Bucket mode (no key): the chunk is one of B buckets of row hashes (B ≈
 * largest shard / chunkRows, a power of two), and identical rows are counted, not repeated.
 *
 * Per chunk: a count and hash sum per shard (one scan each, all shards in parallel). The
 * destination shards of a sharded table are summed and compared with the source; a table that
 * lives whole on every shard (omnisharded, unsharded) is compared shard by shard. Only a chunk
 * whose sums differ is read row by row (identity + row hash) on both sides to name the missing,
 * extra and different rows. Placement is checked on every chunk: the distinct shard-key values
 * each destination shard holds there are run through the sharding function, and the rows of a
 * value that belongs elsewhere are misplaced.
 */
import { NULL_KEY_SHARD, type TableSharder } from '../../sharding/index.js';
import type { ServerConnection } from '../../backend/server.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { countSql, minKeySql, nextBoundarySql, rowsSql, rowsWithShardKeySql, summarySql, type Chunk } from './chunk-hash.js';
import { record, type TableVerifyState } from './report.js';
import type { VerifyTable } from './verify-tables.js';
import type { WorkerSessions } from './consistent-point.js';

export interface TableCompare {
  table: VerifyTable;
  sessions: WorkerSessions;
  /** Source shards that hold the table (every one for a sharded source, else shard 0). */
  srcShards: number[];
  /** Destination shard groups each compared with the source: one group of all shards for a sharded table, one group per shard for a full copy. */
  dstGroups: number[][];
  /** The shard key and the function that places rows on the destination (null: not sharded there). */
  placement: { column: string; sharder: TableSharder } | null;
  chunkRows: number;
  state: TableVerifyState;
  signal: AbortSignal;
  /** After each chunk (the state's cursor is past it): progress and persistence. */
  onChunk(rows: number): Promise<void>;
}

interface Summary {
  rows: number;
  hash: bigint;
  shardKeys: (string | null)[];
}

export async function compareTable(o: TableCompare): Promise<void> {
  const cursor = o.state.cursor;
  if (o.table.key.length === 0 && cursor.buckets === 0) cursor.buckets = await bucketCount(o);
  while (!cursor.done) {
    if (o.signal.aborted) throw new PgError(SQLSTATE.queryCanceled, 'VERIFY stopped');
    let chunk: Chunk;
    if (o.table.key.length === 0) {
      chunk = { kind: 'bucket', bucket: cursor.nextBucket, buckets: cursor.buckets };
    } else {
      chunk = { kind: 'range', lo: cursor.lastKey, hi: await nextBoundary(o, cursor.lastKey) };
    }
    const rows = await compareChunk(o, chunk);
    if (chunk.kind === 'bucket') {
      cursor.nextBucket++;
      cursor.done = cursor.nextBucket >= cursor.buckets;
    } else {
      cursor.lastKey = chunk.hi;
      cursor.done = chunk.hi === null;
    }
    o.state.rowsChecked += rows;
    await o.onChunk(rows);
  }
}

function dstShards(o: TableCompare): number[] {
  return o.dstGroups.flat();
}

/** Sessions reading the table: the source shards', then the destination shards'. */
function allSessions(o: TableCompare): ServerConnection[] {
  return [...o.srcShards.map((s) => o.sessions.src[s]), ...dstShards(o).map((s) => o.sessions.dst[s])];
}

async function bucketCount(o: TableCompare): Promise<number> {
  const counts = await Promise.all(allSessions(o).map(async (c) => Number((await c.query(countSql(o.table))).rows[0][0])));
  const want = Math.ceil(Math.max(1, ...counts) / o.chunkRows);
  let b = 1;
  while (b < want) b *= 2;
  return b;
}

async function nextBoundary(o: TableCompare, lo: string[] | null): Promise<string[] | null> {
  const sql = nextBoundarySql(o.table, lo, o.chunkRows);
  const keys = (await Promise.all(allSessions(o).map(async (c) => (await c.query(sql)).rows[0] as string[] | undefined))).filter((k): k is string[] => k !== undefined);
  if (keys.length <= 1) return keys[0] ?? null;
  return (await o.sessions.src[o.srcShards[0]].query(minKeySql(o.table, keys))).rows[0] as string[];
}

async function summary(c: ServerConnection, sql: string): Promise<Summary> {
  const row = (await c.query(sql)).rows[0];
  return { rows: Number(row[0]), hash: BigInt(row[1]!), shardKeys: row[2] ? (JSON.parse(row[2]) as (string | null)[]) : [] };
}

function add(list: Summary[]): { rows: number; hash: bigint } {
  return list.reduce((a, s) => ({ rows: a.rows + s.rows, hash: a.hash + s.hash }), { rows: 0, hash: 0n });
}

/** Compares one chunk; returns the source rows it held. */
async function compareChunk(o: TableCompare, chunk: Chunk): Promise<number> {
  const t = o.table;
  const shardCol = o.placement && o.placement.sharder.shards > 1 ? o.placement.column : null;
  const [src, dst] = await Promise.all([
    Promise.all(o.srcShards.map((s) => summary(o.sessions.src[s], summarySql(t, chunk, null)))),
    Promise.all(o.sessions.dst.map((c, s) => (dstShards(o).includes(s) ? summary(c, summarySql(t, chunk, shardCol)) : null))),
  ]);
  const want = add(src);
  if (shardCol) await checkPlacement(o, chunk, shardCol, dst);
  let sourceRows: Map<string, RowInfo> | null = null;
  for (const group of o.dstGroups) {
    const got = add(group.map((s) => dst[s]!));
    if (got.rows === want.rows && got.hash === want.hash) continue;
    sourceRows ??= await readRows(o.srcShards.map((s) => o.sessions.src[s]), rowsSql(t, chunk));
    const groupRows = await readRows(group.map((s) => o.sessions.dst[s]), rowsSql(t, chunk));
    diffRows(o.state, sourceRows, groupRows, o.dstGroups.length > 1 ? ` @shard ${group[0]}` : '');
  }
  return want.rows;
}

interface RowInfo {
  /** Row hashes of every copy (bucket mode: one entry per distinct row, with `n` copies). */
  hashes: string[];
  n: number;
}

async function readRows(sessions: ServerConnection[], sql: string): Promise<Map<string, RowInfo>> {
  const out = new Map<string, RowInfo>();
  for (const c of sessions) {
    for (const [key, hash, n] of (await c.query(sql)).rows) {
      const info = out.get(key!);
      if (info) {
        info.hashes.push(hash!);
        info.n += Number(n);
      } else out.set(key!, { hashes: [hash!], n: Number(n) });
    }
  }
  return out;
}

function diffRows(state: TableVerifyState, src: Map<string, RowInfo>, dst: Map<string, RowInfo>, where: string): void {
  for (const [key, s] of src) {
    const d = dst.get(key);
    if (!d) {
      record(state, 'missing', key + where, s.n);
      continue;
    }
    if (d.hashes.some((h) => h !== s.hashes[0])) record(state, 'different', key + where);
    if (d.n > s.n) record(state, 'extra', key + where, d.n - s.n);
    else if (d.n < s.n) record(state, 'missing', key + where, s.n - d.n);
  }
  for (const [key, d] of dst) if (!src.has(key)) record(state, 'extra', key + where, d.n);
}

async function checkPlacement(o: TableCompare, chunk: Chunk, column: string, dst: (Summary | null)[]): Promise<void> {
  const sharder = o.placement!.sharder;
  await Promise.all(
    dst.map(async (sum, shard) => {
      if (!sum) return;
      const wrong = sum.shardKeys.filter((v) => (v === null ? NULL_KEY_SHARD : sharder.shardOfText(v)) !== shard);
      if (wrong.length === 0) return;
      const rows = (await o.sessions.dst[shard].query(rowsWithShardKeySql(o.table, chunk, column, wrong))).rows;
      for (const [key] of rows) record(o.state, 'misplaced', `${key} @shard ${shard}`);
    }),
  );
}
