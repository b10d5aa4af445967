// SQL text for the workload's writes, from a table spec and a row's values: INSERT with a column
// list, positional INSERT (no column list, DEFAULT for what the server fills), multi-row
// INSERT, UPDATE / DELETE by tag, primary key and (when known) shard key.
import type { ColumnSpec, TableSpec } from './generator.js';
import type { Values } from './ledger.js';

/** The column's type without DEFAULT / GENERATED clauses, usable in a cast. */
export function castType(c: ColumnSpec): string {
  const base = c.type.split(/ DEFAULT | GENERATED /)[0];
  return base === 'bigserial' ? 'bigint' : base;
}

/** Builds a parameter list and placeholders; postgres.js parameters are cast from text. */
export class Params {
  readonly values: (string | null)[] = [];
  constructor(private readonly cast: boolean) {}

  /** The shard key stays a bare parameter: that is what the router resolves. */
  add(c: ColumnSpec, v: string | null | undefined, t: TableSpec): string {
    this.values.push(v ?? null);
    const p = `$${this.values.length}`;
    return this.cast && c.name !== t.shard?.column ? `${p}::text::${castType(c)}` : p;
  }
}

/** What an INSERT returns: the tag and every value the server filled in. */
export function returning(t: TableSpec, omitted: ColumnSpec[]): string {
  return ['tag', ...omitted.map((c) => `${c.name}::text AS ${c.name}`)].join(', ');
}

export function insertSql(t: TableSpec, rows: Values[], p: Params, positional: boolean): { sql: string; omitted: ColumnSpec[] } {
  const cols = t.columns.filter((c) => !c.generated);
  const omitted = cols.filter((c) => rows[0][c.name] === undefined);
  if (positional) {
    const lists = rows.map((r) => `(${t.columns.map((c) => (c.generated || r[c.name] === undefined ? 'DEFAULT' : p.add(c, r[c.name], t))).join(', ')})`);
    return { sql: `INSERT INTO ${t.name} VALUES ${lists.join(', ')} RETURNING ${returning(t, omitted)}`, omitted };
  }
  const given = cols.filter((c) => rows[0][c.name] !== undefined);
  const lists = rows.map((r) => `(${given.map((c) => p.add(c, r[c.name], t)).join(', ')})`);
  return { sql: `INSERT INTO ${t.name} (${given.map((c) => c.name).join(', ')}) VALUES ${lists.join(', ')} RETURNING ${returning(t, omitted)}`, omitted };
}

/** A WHERE clause naming one row: by tag or primary key, with the shard key when it is known. */
export function whereRow(t: TableSpec, v: Values, p: Params, byPk: boolean, withShardKey: boolean): string {
  const conds: string[] = [];
  const col = (n: string) => t.columns.find((c) => c.name === n)!;
  if (byPk && t.pk && t.pk.every((k) => v[k] != null)) for (const k of t.pk) conds.push(`${k} = ${p.add(col(k), v[k], t)}`);
  else conds.push(`tag = ${p.add(col('tag'), v.tag, t)}`);
  const key = t.shard?.column;
  if (withShardKey && key && v[key] != null && !conds.some((c) => c.startsWith(`${key} =`))) conds.push(`${key} = ${p.add(col(key), v[key], t)}`);
  return conds.join(' AND ');
}

export function updateSql(t: TableSpec, before: Values, changes: Values, p: Params, byPk: boolean, withShardKey: boolean): string {
  const sets = Object.entries(changes).map(([n, v]) => `${n} = ${p.add(t.columns.find((c) => c.name === n)!, v, t)}`);
  return `UPDATE ${t.name} SET ${sets.join(', ')} WHERE ${whereRow(t, before, p, byPk, withShardKey)} RETURNING tag`;
}

export function deleteSql(t: TableSpec, v: Values, p: Params, byPk: boolean, withShardKey: boolean): string {
  return `DELETE FROM ${t.name} WHERE ${whereRow(t, v, p, byPk, withShardKey)} RETURNING tag`;
}
