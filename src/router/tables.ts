/**
 * Which tables a statement touches and what the sharding schema says about each, plus the
 * shard-key restriction a WHERE clause implies (`key = v`, `key IN (…)`, `key = ANY(ARRAY[…])`,
 * AND / OR of those).
 */
import type { TableSharder } from '../sharding/index.js';
import type { ShardingSchema } from '../sharding/index.js';
import type { Node, ValueSource } from './ast.js';
import { as, columnRefParts, stripCasts, valueSource, walk } from './ast.js';

export type TableClass = 'sharded' | 'omnisharded' | 'unsharded';

export interface TableRef {
  relname: string;
  schemaname?: string;
  /** Name the query uses for it (alias or table name). */
  alias: string;
  cls: TableClass;
  sharder?: TableSharder;
}

/**
 * Classifies a RangeVar by the sharding schema's placement rule. The router does not know the
 * table's columns: for name-less `[[sharded_tables]]` entries, the columns the statement
 * mentions for this table stand in for them.
 */
export function classify(rv: Node, schema: ShardingSchema, mentions: Set<string>): TableRef {
  const relname = String(rv.relname);
  const schemaname = rv.schemaname ? String(rv.schemaname) : undefined;
  const alias = rv.alias?.aliasname ? String(rv.alias.aliasname) : relname;
  const p = schema.placement(relname, schemaname, (c) => mentions.has(`${alias}.${c}`) || mentions.has(`.${c}`));
  if (p.kind === 'sharded') return { relname, schemaname, alias, cls: 'sharded', sharder: p.sharder };
  return { relname, schemaname, alias, cls: p.kind };
}

/** Column names the statement mentions: `alias.col` for qualified refs, `.col` for bare ones. */
export function columnMentions(tree: Node): Set<string> {
  const out = new Set<string>();
  walk(tree, (n) => {
    const parts = columnRefParts(n);
    if (parts) out.add(parts.length === 1 ? `.${parts[0]}` : `${parts[parts.length - 2]}.${parts[parts.length - 1]}`);
    const rt = as(n, 'ResTarget');
    if (rt && rt.name && !rt.val) out.add(`.${rt.name}`); // INSERT column list
    const copy = as(n, 'CopyStmt');
    if (copy?.attlist) for (const a of copy.attlist as Node[]) out.add(`.${as(a, 'String')?.sval}`); // COPY column list
    return undefined;
  });
  return out;
}

/** Every table a statement reads or writes (CTE names excluded), anywhere in the tree. */
export function allTables(tree: Node, schema: ShardingSchema, mentions: Set<string>): TableRef[] {
  const ctes = new Set<string>();
  walk(tree, (n) => {
    const c = as(n, 'CommonTableExpr');
    if (c) ctes.add(String(c.ctename));
    return undefined;
  });
  const out: TableRef[] = [];
  walk(tree, (n) => {
    const rv = as(n, 'RangeVar');
    if (rv && rv.relname !== undefined && !(rv.schemaname === undefined && ctes.has(String(rv.relname)))) out.push(classify(rv, schema, mentions));
    // InsertStmt/UpdateStmt/DeleteStmt/CopyStmt hold their target as a bare RangeVar body.
    for (const k of ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'CopyStmt', 'MergeStmt']) {
      const st = as(n, k);
      if (st && st.relation) out.push(classify(st.relation, schema, mentions));
    }
    return undefined;
  });
  return out;
}

/** The tables in a FROM list (joins flattened); `other` is true if it also has subqueries/functions. */
export function fromScope(from: Node[] | undefined, schema: ShardingSchema, mentions: Set<string>): { tables: TableRef[]; other: boolean } {
  const tables: TableRef[] = [];
  let other = false;
  const visit = (n: Node) => {
    const rv = as(n, 'RangeVar');
    if (rv) return void tables.push(classify(rv, schema, mentions));
    const j = as(n, 'JoinExpr');
    if (j) {
      visit(j.larg);
      visit(j.rarg);
      return;
    }
    other = true;
  };
  for (const n of from ?? []) visit(n);
  return { tables, other };
}

/** Values the shard key is restricted to; null = no usable restriction (all shards). */
export interface KeyRestriction {
  table: TableRef;
  values: ValueSource[];
}

/** Finds the first sharded table of the scope whose key the WHERE clause pins. */
export function keyRestriction(where: Node | undefined, scope: { tables: TableRef[]; other: boolean }): KeyRestriction | null {
  if (!where) return null;
  const single = scope.tables.length === 1 && !scope.other;
  for (const t of scope.tables) {
    if (t.cls !== 'sharded' || !t.sharder) continue;
    const col = t.sharder.column;
    const isKey = (n: Node): boolean => {
      const parts = columnRefParts(n);
      if (!parts || parts[parts.length - 1] !== col) return false;
      if (parts.length === 1) return single;
      if (parts.length === 2) return parts[0] === t.alias;
      return parts[parts.length - 2] === t.relname && t.alias === t.relname && (!t.schemaname || parts[parts.length - 3] === t.schemaname);
    };
    const values = restrict(where, isKey);
    if (values) return { table: t, values };
  }
  return null;
}

function restrict(e: Node, isKey: (n: Node) => boolean): ValueSource[] | null {
  const b = as(e, 'BoolExpr');
  if (b) {
    const kids = (b.args as Node[]).map((a) => restrict(a, isKey));
    if (b.boolop === 'AND_EXPR') {
      // Any pinned conjunct bounds the result; the narrowest is the best choice.
      let best: ValueSource[] | null = null;
      for (const k of kids) if (k && (!best || k.length < best.length)) best = k;
      return best;
    }
    if (b.boolop === 'OR_EXPR') {
      if (kids.some((k) => !k)) return null;
      return kids.flatMap((k) => k as ValueSource[]);
    }
    return null;
  }
  const x = as(e, 'A_Expr');
  if (!x || !Array.isArray(x.name) || x.name.length !== 1 || as(x.name[0], 'String')?.sval !== '=') return null;
  const l = x.lexpr as Node | undefined;
  const r = x.rexpr as Node | undefined;
  if (!l || !r) return null;
  if (x.kind === 'AEXPR_OP') {
    if (isKey(l)) return one(valueSource(r));
    if (isKey(r)) return one(valueSource(l));
    return null;
  }
  if (x.kind === 'AEXPR_IN' && isKey(l)) return list(as(r, 'List')?.items);
  if (x.kind === 'AEXPR_OP_ANY' && isKey(l)) return list(as(stripCasts(r), 'A_ArrayExpr')?.elements);
  return null;
}

function one(v: ValueSource | undefined): ValueSource[] | null {
  return v ? [v] : null;
}

function list(items: Node[] | undefined): ValueSource[] | null {
  if (!items || items.length === 0) return null;
  const out: ValueSource[] = [];
  for (const it of items) {
    const v = valueSource(it);
    if (!v) return null;
    out.push(v);
  }
  return out;
}
