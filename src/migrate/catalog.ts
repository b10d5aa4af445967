/**
 * What a publication covers, read from the source catalog: the tables, their columns (in
 * attribute order, without generated columns, which COPY cannot write), primary keys and
 * replica identity. Shared by pre-flight, schema sync and the copy.
 */
import type { ServerConnection } from '../backend/server.js';
import { quoteLiteral, quoteQualified } from '../wire/quote.js';
import { PgError, SQLSTATE } from '../wire/pg-error.js';

export interface PublishedColumn {
  name: string;
  /** format_type(), schema-qualified when not in pg_catalog. */
  type: string;
}

export interface PublishedTable {
  oid: number;
  schema: string;
  name: string;
  /** Columns COPY reads and writes (generated columns excluded). */
  columns: PublishedColumn[];
  /** relreplident: d(efault) n(othing) f(ull) i(ndex). */
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
  hasPrimaryKey: boolean;
  /** Estimated size in 8 kB blocks, used to split large tables into ctid ranges. */
  blocks: number;
  /** pg_class.reltuples (an estimate; -1 or 0 when never analyzed), for ETAs. */
  estimatedRows: number;
}

export function qualifiedName(t: { schema: string; name: string }): string {
  return quoteQualified(t.schema, t.name);
}

/** `schema.table` without quotes, the key used in task state and SHOW TABLE_COPIES. */
export function tableKey(t: { schema: string; name: string }): string {
  return `${t.schema}.${t.name}`;
}

/** Catalog queries below rely on fully qualified output from format_type / pg_get_expr. */
export async function qualifyEverything(conn: ServerConnection): Promise<void> {
  await conn.query(`SET search_path = pg_catalog`);
}

export async function publicationExists(conn: ServerConnection, publication: string): Promise<boolean> {
  const r = await conn.query(`SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = ${quoteLiteral(publication)}`);
  return r.rows.length > 0;
}

/** The tables of `publication` with their columns; throws 42704 when it does not exist. */
export async function publishedTables(conn: ServerConnection, publication: string): Promise<PublishedTable[]> {
  if (!(await publicationExists(conn, publication))) {
    throw new PgError(
      SQLSTATE.undefinedObject,
      `publication "${publication}" does not exist on the source (${conn.address.host}:${conn.address.port}/${conn.address.database})`,
      { hint: `create it on the source, e.g. CREATE PUBLICATION ${publication} FOR ALL TABLES` },
    );
  }
  const r = await conn.query(`
    SELECT c.oid, n.nspname, c.relname, c.relreplident,
           EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_pk,
           GREATEST(c.reltuples, 0)::int8 AS reltuples,
           GREATEST(pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int8, 0) AS blocks,
           (SELECT coalesce(json_agg(json_build_array(a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum), '[]')
              FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS cols
      FROM pg_catalog.pg_publication_tables pt
      JOIN pg_catalog.pg_namespace n ON n.nspname = pt.schemaname
      JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
     WHERE pt.pubname = ${quoteLiteral(publication)}
     ORDER BY n.nspname, c.relname`);
  return r.rows.map((row) => ({
    oid: Number(row[0]),
    schema: row[1] as string,
    name: row[2] as string,
    replicaIdentity: row[3] as PublishedTable['replicaIdentity'],
    hasPrimaryKey: row[4] === 't',
    estimatedRows: Number(row[5]),
    blocks: Number(row[6]),
    columns: (JSON.parse(row[7] as string) as [string, string][]).map(([name, type]) => ({ name, type })),
  }));
}

export async function serverVersionNum(conn: ServerConnection): Promise<number> {
  const r = await conn.query(`SHOW server_version_num`);
  return Number(r.rows[0][0]);
}

/** Current size in blocks of each table (by `schema.table` key) on one source shard. */
export async function tableBlocks(conn: ServerConnection, tables: PublishedTable[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (tables.length === 0) return out;
  const names = tables.map((t) => quoteLiteral(qualifiedName(t))).join(', ');
  const r = await conn.query(
    `SELECT n.nspname || '.' || c.relname, pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int8
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid IN (SELECT pg_catalog.to_regclass(x) FROM unnest(ARRAY[${names}]) AS x)`,
  );
  for (const [k, v] of r.rows) out.set(k as string, Number(v));
  return out;
}
