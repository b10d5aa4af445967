/**
 * The SQL the applier runs on destination shards, per replicated table: INSERT, UPDATE (full or
 * partial, for unchanged TOAST columns), DELETE, the row fetch needed to move a row with
 * unchanged TOAST columns to another shard, the RETURNING forms that find a row whose shard is
 * not known, and TRUNCATE.
 *
 * Every parameter is cast to the destination column's own type (`$1::numeric(12,4)`), read once
 * per relation from the destination catalog: values arrive as the source type's text output
 * (or send format with `binary`), and the cast makes the server run exactly that type's input
 * function, so numeric, timestamptz, jsonb, arrays, bytea, enums and NULL round-trip unchanged.
 * The type names are looked up on the destination (not from the source's type OIDs) because
 * enums and other user types have different OIDs there.
 */
import type { ServerConnection } from '../../backend/server.js';
import { PgError, SQLSTATE } from '../../wire/pg-error.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../wire/quote.js';
import type { RelationInfo } from '../../wire/pgoutput.js';

/** Types without a usable `=`: FULL-identity matching compares their text form instead. */
const NOT_COMPARABLE = new Set(['json', 'xml', 'point', 'line', 'lseg', 'box', 'path', 'polygon', 'circle']);

export interface TargetTable {
  rel: RelationInfo;
  /** Quoted, schema-qualified name on the destination. */
  qname: string;
  /** Quoted column names, in the source Relation's column order. */
  cols: string[];
  /** Destination types (format_type, schema-qualified when not in pg_catalog), same order. */
  types: string[];
  comparable: boolean[];
  /** 'key': match rows on the replica-identity columns; 'full': REPLICA IDENTITY FULL. */
  match: 'key' | 'full';
  /** Statement cache: shape key → server-side statement name (prepared lazily per connection). */
  statements: Map<string, { name: string; sql: string }>;
}

let nextStatement = 1;

/** Reads the destination columns of `rel` (same schema and name) and builds its TargetTable. */
export async function loadTargetTable(conn: ServerConnection, rel: RelationInfo, where: string): Promise<TargetTable> {
  // search_path = pg_catalog makes format_type qualify every user type (public.mood).
  const r = await conn.query(`BEGIN; SET LOCAL search_path = pg_catalog;
    SELECT a.attname, format_type(a.atttypid, a.atttypmod), coalesce(e.typname, t.typname)
      FROM pg_attribute a
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
     WHERE a.attrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = ${quoteLiteral(rel.namespace)} AND c.relname = ${quoteLiteral(rel.name)})
       AND a.attnum > 0 AND NOT a.attisdropped;
    COMMIT`);
  const qname = quoteQualified(rel.namespace, rel.name);
  if (r.rows.length === 0) {
    throw new PgError('42P01', `table ${qname} is replicated from the source but does not exist on ${where}`, {
      hint: 'run SCHEMA_SYNC pre (or create the table on every destination shard) before streaming',
    });
  }
  const byName = new Map<string, { type: string; base: string }>();
  for (const row of r.rows) byName.set(row[0] ?? '', { type: row[1] ?? '', base: row[2] ?? '' });
  const cols: string[] = [];
  const types: string[] = [];
  const comparable: boolean[] = [];
  for (const c of rel.columns) {
    const d = byName.get(c.name);
    if (!d) {
      throw new PgError('42703', `column ${quoteIdent(c.name)} of ${qname} exists on the source but not on ${where}`, {
        hint: 'add the column on every destination shard (schema changes are not replicated)',
      });
    }
    cols.push(quoteIdent(c.name));
    types.push(d.type);
    comparable.push(!NOT_COMPARABLE.has(d.base));
  }
  return { rel, qname, cols, types, comparable, match: rel.replicaIdentity === 'f' ? 'full' : 'key', statements: new Map() };
}

function statement(t: TargetTable, key: string, build: () => string): { name: string; sql: string } {
  let s = t.statements.get(key);
  if (!s) {
    s = { name: `pgshift_apply_${nextStatement++}`, sql: build() };
    t.statements.set(key, s);
  }
  return s;
}

/** `col = $n::type`, or the NULL-safe / text-compared form used for REPLICA IDENTITY FULL. */
function condition(t: TargetTable, col: number, n: number): string {
  if (t.match === 'key') return `${t.cols[col]} = $${n}::${t.types[col]}`;
  if (!t.comparable[col]) return `${t.cols[col]}::text IS NOT DISTINCT FROM $${n}::${t.types[col]}::text`;
  return `${t.cols[col]} IS NOT DISTINCT FROM $${n}::${t.types[col]}`;
}

/**
 * WHERE clause for columns `where` with parameters from $first. With FULL identity there may be
 * duplicate rows and no index: like PostgreSQL's own apply worker, change exactly one of them.
 */
function whereClause(t: TargetTable, where: readonly number[], first: number): string {
  if (where.length === 0) {
    throw new PgError(SQLSTATE.objectNotInState, `cannot find rows of ${t.qname}: it has no replica identity columns`, {
      hint: `give the source table a primary key or run ALTER TABLE ${t.qname} REPLICA IDENTITY FULL`,
    });
  }
  const conds = where.map((c, i) => condition(t, c, first + i)).join(' AND ');
  if (t.match === 'key') return conds;
  return `ctid = (SELECT ctid FROM ${t.qname} WHERE ${conds} LIMIT 1)`;
}

/** Bit-set of columns as a compact string (statement cache keys for partial shapes). */
export function columnsKey(cols: readonly number[]): string {
  return cols.join(',');
}

export function insertStatement(t: TargetTable): { name: string; sql: string } {
  return statement(t, 'I', () => {
    const params = t.cols.map((_, i) => `$${i + 1}::${t.types[i]}`).join(', ');
    // OVERRIDING SYSTEM VALUE: a GENERATED ALWAYS identity column takes the replicated value
    // (the reverse stream writes into the original source, where identity columns stay ALWAYS).
    return `INSERT INTO ${t.qname} (${t.cols.join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${params})`;
  });
}

/**
 * UPDATE setting `set` (new values, $1..) on the row matched by `where` (old values, after).
 * `found`: the statement returns one row per row it changed, so the applier can tell whether
 * the row was on that shard (see ShardApplier, rows whose shard is found by probing).
 */
export function updateStatement(t: TargetTable, set: readonly number[], where: readonly number[], key: string, found = false): { name: string; sql: string } {
  return statement(t, (found ? 'UR' : 'U') + key, () => {
    const assigns = set.map((c, i) => `${t.cols[c]} = $${i + 1}::${t.types[c]}`).join(', ');
    return `UPDATE ${t.qname} SET ${assigns} WHERE ${whereClause(t, where, set.length + 1)}${found ? ' RETURNING true' : ''}`;
  });
}

/** DELETE of the row matched by `where`; `returning`: it returns that row's columns (source order). */
export function deleteStatement(t: TargetTable, where: readonly number[], key: string, returning = false): { name: string; sql: string } {
  return statement(t, (returning ? 'DR' : 'D') + key, () => `DELETE FROM ${t.qname} WHERE ${whereClause(t, where, 1)}${returning ? ` RETURNING ${t.cols.join(', ')}` : ''}`);
}

/** Reads columns `cols` of the row matched by `where` (to fill unchanged TOAST values). */
export function selectStatement(t: TargetTable, cols: readonly number[], where: readonly number[], key: string): { name: string; sql: string } {
  return statement(t, 'S' + key, () => {
    const list = cols.map((c) => t.cols[c]).join(', ');
    const w = t.match === 'key' ? whereClause(t, where, 1) : where.map((c, i) => condition(t, c, i + 1)).join(' AND ');
    return `SELECT ${list} FROM ${t.qname} WHERE ${w} LIMIT 1`;
  });
}

/**
 * TRUNCATE of the listed tables together. The source's CASCADE is not repeated: like
 * PostgreSQL's apply worker, only the tables the source truncated (and published) are emptied.
 */
export function truncateSql(tables: readonly TargetTable[], restartIdentity: boolean): string {
  return `TRUNCATE ${tables.map((t) => t.qname).join(', ')}${restartIdentity ? ' RESTART IDENTITY' : ''}`;
}
