/**
 * The SQL VERIFY runs on each side: a chunk is a predicate (a key range, or a bucket of row
 * hashes for a table without a key); per chunk one scan returns the row count and the sum of a
 * 64-bit hash of every row's text (`hashtextextended(ROW(cols)::text, 0)`, summed as numeric:
 * exact, no overflow, independent of row order). Two sides with the same rows give the same
 * sums; a changed, missing or extra row changes the sum unless two 64-bit hashes collide
 * (about 2^-64 per changed row). Rows are rendered under fixed session settings (UTC, ISO
 * dates, exact floats, hex bytea) so both sides print the same text for the same value.
 */
import { quoteIdent, quoteLiteral, quoteQualified } from '../../wire/quote.js';
import type { VerifyTable } from './verify-tables.js';

/** Settings every VERIFY session sets first, so a value has one text form on every server. */
export const SESSION_SETTINGS =
  "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex'; SET statement_timeout = 0";

/** A chunk: `lo < key <= hi` (null = unbounded), or one bucket of row hashes. */
export type Chunk = { kind: 'range'; lo: string[] | null; hi: string[] | null } | { kind: 'bucket'; bucket: number; buckets: number };

export function tableName(t: VerifyTable): string {
  return quoteQualified(t.schema, t.name);
}

function rowText(t: VerifyTable): string {
  return `ROW(${t.columns.map((c) => quoteIdent(c.name)).join(', ')})::text`;
}

/** The identity of a row in reports and drill-down maps: its key as a row text, or the whole row without a key. */
function keyText(t: VerifyTable): string {
  return t.key.length > 0 ? `ROW(${t.key.map((c) => quoteIdent(c.name)).join(', ')})::text` : rowText(t);
}

function keyList(t: VerifyTable): string {
  return t.key.map((c) => quoteIdent(c.name)).join(', ');
}

export function keyLiteral(t: VerifyTable, values: string[]): string {
  return `(${values.map((v, i) => `${quoteLiteral(v)}::${t.key[i].type}`).join(', ')})`;
}

export function chunkPredicate(t: VerifyTable, c: Chunk): string {
  if (c.kind === 'bucket') {
    return c.buckets === 1 ? 'true' : `(hashtextextended(${rowText(t)}, 0) & ${c.buckets - 1}) = ${c.bucket}`;
  }
  const parts: string[] = [];
  if (c.lo) parts.push(`(${keyList(t)}) > ${keyLiteral(t, c.lo)}`);
  if (c.hi) parts.push(`(${keyList(t)}) <= ${keyLiteral(t, c.hi)}`);
  return parts.length > 0 ? parts.join(' AND ') : 'true';
}

/** count, hash sum, and (for placement) the distinct shard-key values as a JSON array. */
export function summarySql(t: VerifyTable, c: Chunk, shardColumn: string | null): string {
  const placement = shardColumn ? `, json_agg(DISTINCT ${quoteIdent(shardColumn)}::text)` : '';
  return `SELECT count(*)::int8, coalesce(sum(hashtextextended(${rowText(t)}, 0)), 0)::text${placement} FROM ${tableName(t)} WHERE ${chunkPredicate(t, c)}`;
}

/** Every row of the chunk: identity, row hash, and how many identical rows (bucket mode groups duplicates). */
export function rowsSql(t: VerifyTable, c: Chunk): string {
  if (t.key.length === 0) {
    return `SELECT x, hashtextextended(x, 0)::text, count(*)::int8 FROM (SELECT ${rowText(t)} AS x FROM ${tableName(t)} WHERE ${chunkPredicate(t, c)}) s GROUP BY x`;
  }
  return `SELECT ${keyText(t)}, hashtextextended(${rowText(t)}, 0)::text, 1 FROM ${tableName(t)} WHERE ${chunkPredicate(t, c)}`;
}

/** Identities of the chunk's rows whose shard key is one of `values` (a null entry = NULL key). */
export function rowsWithShardKeySql(t: VerifyTable, c: Chunk, shardColumn: string, values: (string | null)[]): string {
  const col = quoteIdent(shardColumn);
  const lits = values.filter((v): v is string => v !== null).map(quoteLiteral);
  const conds: string[] = [];
  if (lits.length > 0) conds.push(`${col}::text IN (${lits.join(', ')})`);
  if (values.includes(null)) conds.push(`${col} IS NULL`);
  return `SELECT ${keyText(t)} FROM ${tableName(t)} WHERE ${chunkPredicate(t, c)} AND (${conds.join(' OR ')})`;
}

/** The key `chunkRows` rows past `lo` on one shard: the end of a chunk of at most chunkRows rows there (null = fewer left). */
export function nextBoundarySql(t: VerifyTable, lo: string[] | null, chunkRows: number): string {
  const cols = t.key.map((c) => `${quoteIdent(c.name)}::text`).join(', ');
  const where = lo ? ` WHERE (${keyList(t)}) > ${keyLiteral(t, lo)}` : '';
  return `SELECT ${cols} FROM ${tableName(t)}${where} ORDER BY ${keyList(t)} OFFSET ${chunkRows - 1} LIMIT 1`;
}

/** The smallest of several keys, compared by the server under the key's types and collation. */
export function minKeySql(t: VerifyTable, keys: string[][]): string {
  const names = t.key.map((_, i) => `k${i}`);
  return `SELECT ${names.map((n) => `${n}::text`).join(', ')} FROM (VALUES ${keys.map((k) => keyLiteral(t, k)).join(', ')}) v(${names.join(', ')}) ORDER BY ${names.join(', ')} LIMIT 1`;
}

export function countSql(t: VerifyTable): string {
  return `SELECT count(*)::int8 FROM ${tableName(t)}`;
}
