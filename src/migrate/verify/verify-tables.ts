/**
 * Which tables VERIFY compares and by which key: the tables of a publication (a task's), or
 * every user table of the source (two clusters compared outside a task), optionally narrowed to
 * named ones. The key is the primary key, else the replica identity index; a table with
 * neither (REPLICA IDENTITY FULL) is compared in row-hash buckets instead of key ranges.
 */
import type { ServerConnection } from '../../backend/server.js';
import type { PublishedTable, PublishedColumn } from '../catalog.js';
import { tableKey } from '../catalog.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { quoteLiteral } from '../../wire/quote.js';

export interface VerifyTable extends PublishedTable {
  /** Key columns in index order with their types; empty = no usable key (bucket mode). */
  key: PublishedColumn[];
}

export async function verifyTables(conn: ServerConnection, opts: { publication?: string; names?: string[] }): Promise<VerifyTable[]> {
  const inPublication = opts.publication
    ? `AND c.oid IN (SELECT format('%I.%I', schemaname, tablename)::regclass FROM pg_catalog.pg_publication_tables WHERE pubname = ${quoteLiteral(opts.publication)})`
    : '';
  const r = await conn.query(`
    SELECT c.oid, n.nspname, c.relname, c.relreplident,
           EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p'),
           GREATEST(c.reltuples, 0)::int8,
           (SELECT coalesce(json_agg(json_build_array(a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum), '[]')
              FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
           (SELECT coalesce(json_agg(a.attname ORDER BY k.ord), '[]')
              FROM pg_catalog.pg_index i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid
               AND i.indexrelid = (SELECT i2.indexrelid FROM pg_catalog.pg_index i2
                                    WHERE i2.indrelid = c.oid AND (i2.indisprimary OR (c.relreplident = 'i' AND i2.indisreplident))
                                    ORDER BY i2.indisprimary DESC LIMIT 1))
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       ${inPublication}
     ORDER BY n.nspname, c.relname`);
  let tables: VerifyTable[] = r.rows.map((row) => {
    const columns = (JSON.parse(row[6]!) as [string, string][]).map(([name, type]) => ({ name, type }));
    const keyNames = JSON.parse(row[7]!) as string[];
    return {
      oid: Number(row[0]),
      schema: row[1]!,
      name: row[2]!,
      replicaIdentity: row[3] as PublishedTable['replicaIdentity'],
      hasPrimaryKey: row[4] === 't',
      estimatedRows: Number(row[5]),
      blocks: 0,
      columns,
      key: keyNames.map((k) => columns.find((c) => c.name === k)).filter((c): c is PublishedColumn => c !== undefined),
    };
  });
  if (opts.names && opts.names.length > 0) {
    const wanted = opts.names;
    for (const w of wanted) {
      if (!tables.some((t) => matches(t, w))) {
        throw new PgError('42P01', `VERIFY: table "${w}" is not ${opts.publication ? `in publication "${opts.publication}"` : 'a table of the source'}`);
      }
    }
    tables = tables.filter((t) => wanted.some((w) => matches(t, w)));
  }
  return tables;
}

function matches(t: VerifyTable, name: string): boolean {
  return name === t.name || name === tableKey(t);
}
