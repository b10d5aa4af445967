/**
 * Small helpers over libpg-query's JSON AST. The AST is plain JSON (protobuf style: default
 * values such as 0, false and '' are omitted), so every accessor here tolerates missing fields.
 */

// The AST is untyped JSON from the WASM parser; a loose record type keeps access concise.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Node = { [key: string]: any };

/** The single key of a wrapped node (`{ SelectStmt: {...} }` → 'SelectStmt'). */
export function nodeType(n: Node | undefined | null): string | undefined {
  if (!n) return undefined;
  for (const k in n) return k;
  return undefined;
}

/** Unwraps `{ Type: body }` when the type matches. */
export function as(n: Node | undefined | null, type: string): Node | undefined {
  return n && n[type] !== undefined ? (n[type] as Node) : undefined;
}

/** A constant as the router sees it: its text form and which literal kind produced it. */
export interface Literal {
  kind: 'int' | 'float' | 'string' | 'bool' | 'null' | 'bits';
  text: string;
}

/** Reads an A_Const body (`{ ival: { ival: 5 } }`, `{ sval: { sval: 'x' } }` …). */
export function constValue(c: Node): Literal {
  if (c.isnull) return { kind: 'null', text: '' };
  if (c.ival !== undefined) return { kind: 'int', text: String(c.ival.ival ?? 0) };
  if (c.fval !== undefined) return { kind: 'float', text: String(c.fval.fval ?? '0') };
  if (c.sval !== undefined) return { kind: 'string', text: String(c.sval.sval ?? '') };
  if (c.boolval !== undefined) return { kind: 'bool', text: c.boolval.boolval ? 'true' : 'false' };
  if (c.bsval !== undefined) return { kind: 'bits', text: String(c.bsval.bsval ?? '') };
  return { kind: 'null', text: '' };
}

/** Strips type casts (`$1::bigint`, `'42'::int8`, `CAST(x AS int)`) around an expression. */
export function stripCasts(n: Node): Node {
  let cur = n;
  for (;;) {
    const tc = as(cur, 'TypeCast');
    if (!tc || !tc.arg) return cur;
    cur = tc.arg as Node;
  }
}

/** A value the router can hash: a constant or a Bind parameter ($n, 1-based). */
export type ValueSource = { kind: 'literal'; lit: Literal } | { kind: 'param'; index: number };

/** A constant or parameter (possibly cast), else undefined. */
export function valueSource(n: Node): ValueSource | undefined {
  const inner = stripCasts(n);
  const c = as(inner, 'A_Const');
  if (c) return { kind: 'literal', lit: constValue(c) };
  const p = as(inner, 'ParamRef');
  if (p && typeof p.number === 'number') return { kind: 'param', index: p.number };
  return undefined;
}

/** Name parts of a ColumnRef (`t.id` → ['t','id']); undefined for `*` or non-column nodes. */
export function columnRefParts(n: Node): string[] | undefined {
  const cr = as(n, 'ColumnRef');
  if (!cr || !Array.isArray(cr.fields)) return undefined;
  const out: string[] = [];
  for (const f of cr.fields as Node[]) {
    const s = as(f, 'String');
    if (!s) return undefined;
    out.push(String(s.sval ?? ''));
  }
  return out;
}

/** True for `*` or `t.*` in a target list. */
export function isStar(n: Node): boolean {
  const cr = as(n, 'ColumnRef');
  if (!cr || !Array.isArray(cr.fields)) return false;
  return cr.fields.some((f: Node) => f.A_Star !== undefined);
}

/** Last component of a qualified name list (`pg_catalog.count` → 'count'). */
export function lastName(names: Node[] | undefined): string {
  if (!names || names.length === 0) return '';
  const s = as(names[names.length - 1], 'String');
  return s ? String(s.sval ?? '') : '';
}

/** Visits every object in the tree (depth first), stopping descent where `fn` returns false. */
export function walk(n: unknown, fn: (node: Node) => boolean | void): void {
  if (n === null || typeof n !== 'object') return;
  if (Array.isArray(n)) {
    for (const x of n) walk(x, fn);
    return;
  }
  if (fn(n as Node) === false) return;
  for (const k in n as Node) {
    const v = (n as Node)[k];
    if (v !== null && typeof v === 'object') walk(v, fn);
  }
}

/** Structural key of an expression, ignoring source locations, for "same expression" tests. */
export function exprKey(n: unknown): string {
  return JSON.stringify(n, (k, v) => (k === 'location' ? undefined : v));
}

/** Column name PostgreSQL gives an unaliased select-list expression (subset of FigureColname). */
export function outputName(target: Node): string {
  if (target.name) return String(target.name);
  return figureName(target.val as Node) ?? '?column?';
}

function figureName(n: Node | undefined): string | undefined {
  if (!n) return undefined;
  const parts = columnRefParts(n);
  if (parts) return parts[parts.length - 1];
  const fc = as(n, 'FuncCall');
  if (fc) return lastName(fc.funcname);
  const tc = as(n, 'TypeCast');
  if (tc) return figureName(tc.arg) ?? lastName(tc.typeName?.names);
  return undefined;
}

/** Known aggregate function names (built-in). User-defined aggregates cannot be recognised. */
export const AGGREGATES = new Set([
  'count', 'sum', 'min', 'max', 'avg', 'array_agg', 'string_agg', 'json_agg', 'jsonb_agg',
  'json_object_agg', 'jsonb_object_agg', 'json_agg_strict', 'jsonb_agg_strict', 'json_objectagg', 'json_arrayagg',
  'bool_and', 'bool_or', 'every', 'bit_and', 'bit_or', 'bit_xor', 'xmlagg', 'stddev', 'stddev_pop',
  'stddev_samp', 'variance', 'var_pop', 'var_samp', 'corr', 'covar_pop', 'covar_samp', 'regr_avgx',
  'regr_avgy', 'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope', 'regr_sxx', 'regr_sxy',
  'regr_syy', 'percentile_cont', 'percentile_disc', 'mode', 'rank', 'dense_rank', 'percent_rank',
  'cume_dist', 'any_value', 'range_agg', 'range_intersect_agg', 'grouping',
]);

/** True when the FuncCall body is an aggregate call (not a window call). */
export function isAggregateCall(fc: Node): boolean {
  if (fc.over) return false;
  return AGGREGATES.has(lastName(fc.funcname).toLowerCase()) || !!fc.agg_star || !!fc.agg_distinct || !!fc.agg_filter || !!fc.agg_within_group;
}

/** First aggregate or window call inside an expression, not descending into sub-selects. */
export function findAggregate(n: unknown): { name: string; window: boolean } | undefined {
  let found: { name: string; window: boolean } | undefined;
  walk(n, (node) => {
    if (found) return false;
    if (node.SubLink !== undefined || node.SelectStmt !== undefined) return false;
    const fc = as(node, 'FuncCall');
    if (fc) {
      if (fc.over) found = { name: lastName(fc.funcname), window: true };
      else if (isAggregateCall(fc)) found = { name: lastName(fc.funcname), window: false };
    }
    return undefined;
  });
  return found;
}

/** Human-readable rendering of a small expression for error messages. */
export function describeExpr(n: Node | undefined): string {
  if (!n) return '?';
  const parts = columnRefParts(n);
  if (parts) return parts.join('.');
  const fc = as(n, 'FuncCall');
  if (fc) return `${lastName(fc.funcname)}(${fc.agg_star ? '*' : fc.agg_distinct ? 'DISTINCT …' : '…'})`;
  const c = as(n, 'A_Const');
  if (c) return constValue(c).text;
  return nodeType(n) ?? '?';
}
